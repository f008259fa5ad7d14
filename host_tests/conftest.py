# pytest set-up: firmware/ and the CPython `micropython` shim on sys.path.

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("board/cpython", "firmware", "board", "host_tests", "tools"):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)
