"""Performance figures (printed, not asserted): make bench.

Under the MicroPython unix port (scripts tools/bench/mpy_*.py, bounded heap): heap bytes
per tick and per minute rollover, microseconds per tick, and whatever figures the other
scripts print (journal commit cost, Last Gasp path, ECHONET frames/s). With mpy-cross: the
total .mpy size of the firmware. Under CPython: simulated meter-days per second.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
from paths import build_mpy, micropython_env, tool  # noqa: E402

HEAP = "160k"


def mpy_sizes():
    """Compile every board .py with mpy-cross; return {package dir: bytes}."""
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("firmware", "board"):
            for path in sorted(glob.glob(os.path.join(ROOT, top, "**", "*.py"), recursive=True)):
                out = os.path.join(tmp, "x.mpy")
                subprocess.run([tool("mpy-cross"), "-o", out, path], check=True)
                key = os.path.relpath(os.path.dirname(path), ROOT)
                sizes[key] = sizes.get(key, 0) + os.path.getsize(out)
    return sizes


WASM32_RUNNER = os.path.join(ROOT, "tools", "wasm32", "run.mjs")
WASM32_PACKAGE = os.path.join(ROOT, "tools", "wasm32", "node_modules", "@micropython",
                              "micropython-webassembly-pyscript", "micropython.mjs")
# the scripts the 32-bit port can run (mpy_mqtt.py needs socket, which the port lacks)
WASM32_SCRIPTS = ("mpy_tick.py", "mpy_journal.py", "mpy_lastgasp.py", "mpy_ram.py")


def wasm32_figures(mpy_dir):
    """The heap figures of WASM32_SCRIPTS under the 32-bit MicroPython (WebAssembly port,
    tools/wasm32/run.mjs: 4-byte pointers, 31-bit small ints, the ESP32's object model), or
    None without node or the package. Its us figures are left out: the WebAssembly
    interpreter's speed says nothing about the ESP32's."""
    if shutil.which("node") is None or not os.path.isfile(WASM32_PACKAGE):
        return None
    figures = []
    for name in WASM32_SCRIPTS:
        figures += run_mpy_scripts(name, mpy_dir, port="wasm32")
    return [f for f in figures if f[1] == "FAILED" or f[2][1] != "us"]


def run_mpy_scripts(pattern, mpy_dir, port="unix"):
    figures = []
    for script in sorted(glob.glob(os.path.join(ROOT, "tools", "bench", pattern))):
        heap = HEAP
        with open(script) as f:
            for line in f:
                if line.startswith("# bench-heap:"):  # the simulated flash lives in the heap
                    heap = line.split(":", 1)[1].split()[0]
        cmd = [tool("micropython")] if port == "unix" else ["node", WASM32_RUNNER]
        r = subprocess.run(cmd + ["-X", "heapsize=" + heap, script],
                           capture_output=True, text=True, cwd=ROOT,
                           env=micropython_env(mpy_dir), timeout=600)
        name = os.path.basename(script)
        if r.returncode != 0:
            why = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or [""]
            figures.append((name, "FAILED", why))  # MicroPython prints tracebacks on stdout
            continue
        for line in r.stdout.splitlines():
            if line.startswith("figure:"):
                parts = line.split(None, 3)
                figures.append((name, parts[1], (parts[2], parts[3] if len(parts) > 3 else "")))
    return figures


def days_per_second(days):
    for sub in ("board/cpython", "firmware", "board", "host_tests"):
        sys.path.insert(0, os.path.join(ROOT, sub))
    from meter.assembly import build_meter
    from meter.metering.frontends.simulated import SimulatedHousehold
    from hosthal.board import HostHal
    from hosthal.clock import VirtualClock

    clock = VirtualClock(wall_s=9_000 * 86_400)
    meter = build_meter(HostHal(clock, SimulatedHousehold(clock, seed=3)))
    meter.boot()
    n = days * 86_400
    t0 = time.perf_counter()
    for _ in range(n):
        meter.step()
        meter.idle()
        clock.advance(1000)
    return days / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description="print the firmware's performance figures")
    p.add_argument("--days", type=int, default=2, help="simulated days for the CPython run")
    p.add_argument("--no-wasm32", action="store_true",
                   help="skip the 32-bit MicroPython (WebAssembly port) runs")
    args = p.parse_args(argv)

    print("== MicroPython unix port (heap %s, firmware as .mpy) ==" % HEAP)
    with tempfile.TemporaryDirectory() as mpy_dir:
        figures = run_mpy_scripts("mpy_*.py", build_mpy(mpy_dir))
        # the ECHONET scenario measures frames/s and bytes per Get as it checks them
        r = subprocess.run([tool("micropython"), "-X", "heapsize=" + HEAP,
                            os.path.join(ROOT, "host_tests", "mpy", "scenario_echonet.py")],
                           capture_output=True, text=True, cwd=ROOT,
                           env=micropython_env(mpy_dir), timeout=600)
        echonet = [ln for ln in r.stdout.splitlines() if ln and ln != "PASS"]
        figures32 = None if args.no_wasm32 else wasm32_figures(mpy_dir)
    for script, name, value in figures:
        if name == "FAILED":
            print("  %-22s FAILED: %s" % (script, value[0]))
        else:
            print("  %-40s %10s %s   (%s)" % (name, value[0], value[1], script))

    if not args.no_wasm32:
        print("== MicroPython wasm32 port (32-bit, 31-bit small ints; firmware as .mpy) ==")
        if figures32 is None:
            print("  not run: node or tools/wasm32/node_modules missing (make venv)")
        unix64 = dict((name, value) for _, name, value in figures if name != "FAILED")
        for script, name, value in figures32 or ():
            if name == "FAILED":
                print("  %-22s FAILED: %s" % (script, value[0]))
                continue
            other = unix64.get(name)
            print("  %-40s %10s %s   (64-bit unix: %s %s; %s)"
                  % (name, value[0], value[1], other[0] if other else "-",
                     other[1] if other else "", script))

    print("== ECHONET Lite service (MicroPython unix port) ==")
    for line in echonet:
        print("  " + line)

    print("== mpy-cross ==")
    sizes = mpy_sizes()
    for key in sorted(sizes):
        print("  %-40s %10d B" % (key, sizes[key]))
    fw = sum(v for k, v in sizes.items() if k.startswith("firmware"))
    print("  %-40s %10d B" % ("firmware total .mpy", fw))
    host = ("board/hosthal", "board/cpython")  # host-only parts: never on a board
    on_board = sum(v for k, v in sizes.items() if not k.startswith(host))
    print("  %-40s %10d B" % ("firmware + board total .mpy (on the board)", on_board))

    print("== CPython %d.%d ==" % sys.version_info[:2])
    print("  %-40s %10.1f days/s" % ("simulated meter-days per second",
                                     days_per_second(args.days)))


if __name__ == "__main__":
    main()
