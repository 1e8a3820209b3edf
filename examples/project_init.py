"""A periodic task, run from project_init.sh with `exec python3 project_init.py`.

Appends a line to task_output.log every INTERVAL seconds (default 300), using
only the standard library. Whatever it prints lands in the cocalc-init log as
`project_init_sh stdout: ...`. If it crashes, cocalc-init starts it again.
"""

import os
import random
import sys
import time
from datetime import datetime, timezone

INTERVAL = float(os.environ.get("INTERVAL", "300"))


def task(i):
    with open("task_output.log", "a") as out:
        ts = datetime.now(timezone.utc).isoformat(sep=" ")
        out.write("Task {}: {} value = {}\n".format(i, ts, random.random()))


def main():
    i = 0
    while True:
        task(i)
        print("task {} done".format(i), flush=True)
        i += 1
        time.sleep(INTERVAL)


if __name__ == "__main__":
    sys.exit(main())
