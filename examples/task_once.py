"""The periodic task of project_init.py, as one run: cocalc-init runs it at
its times, so it holds no interpreter in between and needs no sleep loop.

    cocalc-init -p 'task=python3 /home/user/task_once.py' -o task.every=5m
    cocalc-init -p 'task=python3 /home/user/task_once.py' -o 'task.cron=*/5 * * * *'

Each run appends one line to task_output.log (in its working folder) and
exits 0; one that fails is logged as such and tried again at its next time.
The run number comes from the file itself, so it survives a restart.
"""

import os
import random
from datetime import datetime, timezone


def main():
    done = 0
    if os.path.exists("task_output.log"):
        with open("task_output.log") as f:
            done = sum(1 for _ in f)
    with open("task_output.log", "a") as out:
        ts = datetime.now(timezone.utc).isoformat(sep=" ")
        out.write("Task {}: {} value = {}\n".format(done, ts, random.random()))
    print("task {} done".format(done), flush=True)


if __name__ == "__main__":
    main()
