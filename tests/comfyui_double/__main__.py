"""Run the ComfyUI double alone: ``python -m tests.comfyui_double --port N --root DIR``.

Prints ``listening on http://127.0.0.1:PORT`` once it accepts connections. SIGTERM/SIGINT stop
it; SIGUSR1 makes it go away (connections refused) and SIGUSR2 brings it back on the same port.
Everything else is driven over HTTP (``/__double__/...``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.comfyui_double.double import DEFAULT_OBJECT_INFO, ComfyUIDouble


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.comfyui_double", description=__doc__)
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--root", type=Path, required=True, help="holds input/, output/, temp/")
    parser.add_argument("--object-info", type=Path, default=DEFAULT_OBJECT_INFO)
    parser.add_argument("--step-seconds", type=float, default=0.01)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    double = ComfyUIDouble(
        args.root, args.object_info, port=args.port, host=args.host, step_seconds=args.step_seconds
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            threading.Thread(target=double.go_away, daemon=True).start()
        elif signum == signal.SIGUSR2:
            threading.Thread(target=double.come_back, daemon=True).start()
        else:
            done.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, on_signal)
    double.start()
    sys.stdout.write(f"listening on {double.url}\n")
    sys.stdout.flush()
    done.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
