#!/usr/bin/env bash
# The load tests at full size (not run by CI, which runs them smaller):
# three programs flooding 100 MB each through rotation, a 60 s crash loop,
# 20,000 orphans, a signal storm, 100 programs. Prints the figures reached.
# Run as root: bash bench/stress.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COCALC_STRESS=1 cargo test --release --test load -- --nocapture --test-threads 1 2>&1 \
    | grep -E '^(test |zombie storm|signal storm|output flood|crash loop|100 programs)|test result'
