"""Import paths for the host tools: the CPython `micropython` shim, the firmware and the host
HAL (board/hosthal). A tool imports this module first; tools/ itself is on sys.path when the
tool runs as `python tools/NAME.py`."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _sub in ("board", "firmware", "board/cpython"):
    _p = os.path.join(ROOT, _sub)
    if _p not in sys.path:
        sys.path.insert(0, _p)
