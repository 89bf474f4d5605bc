"""A ComfyUI 0.3.64 test double, with AnimateDiff-Evolved, VHS, IPAdapter Plus, Frame-Interpolation.

``ComfyUIDouble(root_dir).start()`` serves HTTP and ``/ws`` on one loopback port, validates prompts
against ``workflows/data/object_info.json`` as the real server does, runs them on one executor
with simulated time, and writes real output files with ffmpeg. Controls (step time, failures,
stalls, dropped or silent sockets, delayed history, restarts, going away) and observations (prompts
received, runs with times) exist as Python methods and as ``/__double__/`` HTTP endpoints.
Run it alone with ``python -m tests.comfyui_double --port N --root DIR``.
"""

from tests.comfyui_double.double import DEFAULT_OBJECT_INFO, ComfyUIDouble
from tests.comfyui_double.state import Failure, ReceivedPrompt, RunRecord

__all__ = ["DEFAULT_OBJECT_INFO", "ComfyUIDouble", "Failure", "ReceivedPrompt", "RunRecord"]
