"""Every benchmark, one after another; each writes its own section of docs/benchmarks.md.

    .venv/bin/python bench/run_all.py            (about 7 minutes on 2 cores)

Run it on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "intake_bench.py",
    "generate_bench.py",
    "comfyui_bench.py",
    "export_bench.py",
    "sheet_bench.py",
    "status_bench.py",
    "notify_bench.py",
    "cancel_bench.py",
    "claim_bench.py",
)


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode != 0:
            failed.append(name)
        print(f"== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
