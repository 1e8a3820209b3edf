# Run by cocalc-init as `bash project_init.sh`, in this file's folder, when
# the container starts. Exit 0 (or 2) when done: it is not run again. Any
# other exit status, or death by a signal, and it is started again.
#
# This is a non-interactive shell: ~/.bashrc is not read. Source what you need.

# Record when the project started, next to this script.
date > project-start
echo "project started at $(cat project-start)"

# For a long-running job in another language, end with exec, e.g.:
#   exec python3 project_init.py
