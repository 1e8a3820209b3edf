#!/usr/bin/env bash
# Benchmarks cocalc-init against tini, tini-static, dumb-init, catatonit and
# supervisord, each as PID 1 of a fresh PID namespace, interleaved, in one
# run; writes bench/RESULTS.md. Run by hand as root (not by cargo test):
#     bash bench/run.sh            # all scenarios
#     QUICK=1 bash bench/run.sh    # fewer repetitions
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in tini tini-static dumb-init catatonit supervisord valgrind perl python3 unshare file; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    pkgs=()
    for t in "${need[@]}"; do
        case "$t" in
            tini|tini-static) pkgs+=(tini) ;;
            supervisord) pkgs+=(supervisor) ;;
            unshare) pkgs+=(util-linux) ;;
            *) pkgs+=("$t") ;;
        esac
    done
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
cargo static
exec python3 bench/bench.py target/x86_64-unknown-linux-gnu/release/cocalc-init "$@"
