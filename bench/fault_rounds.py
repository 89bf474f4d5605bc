"""The kill rounds of tests/faults/test_kill_rounds.py, longer than CI runs them (3 rounds on
each database): `vidgen run` killed with SIGKILL at a random point in each round while a
manifest arrives, on SQLite and on MariaDB, then one clean start; prints each run's tally (lost,
duplicated, stuck, failed, prompts sent twice, orphan ffmpeg) and the sums. The figures of
docs/reliability.md come from here.

    .venv/bin/python bench/fault_rounds.py [ROUNDS [REPEATS]]     (default 20 rounds, once)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/faults/test_kill_rounds.py"
NAMES = ("lost", "duplicated", "stuck", "failed", "prompts sent twice", "orphan ffmpeg")
COUNTED = re.compile(rf"({'|'.join(NAMES)}) (\d+)")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    failed_runs = 0
    with tempfile.TemporaryDirectory() as scratch:
        tally_file = Path(scratch) / "tally.txt"
        environment = {
            **os.environ,
            "VIDGEN_FAULT_ROUNDS": str(rounds),
            "VIDGEN_FAULT_TALLY": str(tally_file),
        }
        for _ in range(repeats):
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-n", "0", "-q", "-o", "timeout=3600", TEST],
                cwd=REPO,
                env=environment,
                check=False,
            )
            failed_runs += done.returncode != 0
        lines = tally_file.read_text(encoding="utf-8").splitlines() if tally_file.exists() else []
    totals: Counter[str] = Counter()
    for line in lines:
        print(line)
        for name, count in COUNTED.findall(line):
            totals[name] += int(count)
    killed = rounds * len(lines)
    summary = ", ".join(f"{name} {totals[name]}" for name in NAMES)
    print(
        f"in all: {killed} kills in {len(lines)} runs: {summary}; failed test runs: {failed_runs}"
    )
    return 1 if failed_runs or any(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
