"""Build the firmware for a board (mpy-cross) and copy it to the board (mpremote).

    python tools/deploy.py --board esp32_devkitc --build-only     -> build/esp32_devkitc/
    python tools/deploy.py --board esp32_devkitc --port /dev/ttyUSB0
    python tools/deploy.py --board esp32_devkitc --port auto --key var/keys/meter.key

The board gets: main.py (source), board_config.py and every module of firmware/meter and
board/esp32hal compiled to .mpy. The per-meter key (for seals, commands and alarms) is copied
to /meter.key only when --key is given; it is never part of the build or of the repository.
For a production image, freeze the same modules with board/<name>/manifest.py instead.
"""

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
from paths import tool  # noqa: E402

PACKAGES = (("firmware", "meter"), ("board", "esp32hal"))


def build(board, out_root):
    board_dir = os.path.join(ROOT, "board", board)
    if not os.path.isfile(os.path.join(board_dir, "board_config.py")):
        raise SystemExit("unknown board %r: no board/%s/board_config.py" % (board, board))
    out = os.path.join(out_root, board)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    count = 0
    for top, pkg in PACKAGES:
        src_root = os.path.join(ROOT, top)
        for dirpath, _, files in os.walk(os.path.join(src_root, pkg)):
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                src = os.path.join(dirpath, f)
                rel = os.path.relpath(src, src_root)[:-3] + ".mpy"
                dst = os.path.join(out, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                subprocess.run([tool("mpy-cross"), "-o", dst, src],
                               check=True)
                count += 1
    subprocess.run([tool("mpy-cross"), "-o", os.path.join(out, "board_config.mpy"),
                    os.path.join(board_dir, "board_config.py")], check=True)
    shutil.copy(os.path.join(ROOT, "firmware", "main.py"), os.path.join(out, "main.py"))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print("built %d modules for %s into %s (%d bytes)" % (count + 2, board, out, size))
    return out


def deploy(out, port, key):
    mpremote = [tool("mpremote")] + ([] if port == "auto" else ["connect", port])
    subprocess.run(mpremote + ["fs", "cp", "-r", out + "/.", ":"], check=True)
    if key:
        if not os.path.isfile(key):
            raise SystemExit("key file %s not found" % key)
        subprocess.run(mpremote + ["fs", "cp", key, ":meter.key"], check=True)
    subprocess.run(mpremote + ["reset"], check=True)


def main(argv=None):
    p = argparse.ArgumentParser(description="build and deploy the meter firmware")
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--port", default="auto", help="serial port, or auto")
    p.add_argument("--out", default=os.path.join(ROOT, "build"))
    p.add_argument("--key", help="per-meter key file to provision as /meter.key")
    p.add_argument("--build-only", action="store_true")
    a = p.parse_args(argv)
    out = build(a.board, a.out)
    if not a.build_only:
        deploy(out, a.port, a.key)


if __name__ == "__main__":
    main()
