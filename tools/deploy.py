"""Build the firmware for a board (mpy-cross), copy it to the board (mpremote), and write the
board's partition table onto a stock MicroPython image (esptool). docs/boards.md has the paths.

    python tools/deploy.py --board esp32_s3_devkitc --build-only  -> build/esp32_s3_devkitc/
    python tools/deploy.py --board esp32_s3_devkitc --port /dev/ttyACM0 [--key K] [--dry-run]
    python tools/deploy.py --board esp32_devkitc --config-only --secrets S --key K
    python tools/deploy.py --board esp32_devkitc --write-table --port /dev/ttyUSB0 [--dry-run]

Copy (development, boards with PSRAM): main.py (source), board_config.py and every module of
firmware/meter and board/esp32hal compiled to .mpy. Every other .py/.mpy on the board's
filesystem is removed first: a stale module there shadows the copied or frozen one ('' comes
before .frozen on sys.path). A board without PSRAM cannot hold the meter loaded from .mpy
files: the copy is refused (--force overrides) and --config-only copies just board_config,
/secrets.json and /meter.key onto a frozen image (board/<name>/ is its BOARD_DIR).

--write-table (an explicit step, once per board on a stock image): erases the new vfs range
(the stock firmware then formats a fresh filesystem there instead of looping in
fs_corrupted() over a LittleFS of the old size), the journal range (no old filesystem blocks
inside the journal) and, where the table moves them, otadata and nvs; then writes the table
built from board/<name>/partitions.csv at 0x8000. --dry-run prints the commands instead.
The per-meter key goes to /meter.key only with --key; it is never part of the build.
"""

import argparse
import concurrent.futures
import csv
import hashlib
import importlib.util
import os
import shlex
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
from paths import tool  # noqa: E402

PACKAGES = (("firmware", "meter"), ("board", "esp32hal"))

# The meter loaded from .mpy files needs ~160 KB of heap; an ESP32 without PSRAM has ~56 KB
# at start and ~110 KB at best (issue 10: 188 KB measured for the 32-bit .mpy build).
LOADED_NEED_KB = 160
HEAP_NO_PSRAM_KB = 110

# ESP-IDF partition table (gen_esp32part.py format): 32-byte entries from 0x8000, an MD5
# entry after them, 0xFF up to 0xC00 bytes.
TABLE_OFFSET = 0x8000
TABLE_MAX = 0xC00
_ENTRY = struct.Struct("<2sBBLL16sL")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14
TYPES = {"app": 0x00, "data": 0x01}
SUBTYPES = {
    0x00: {"factory": 0x00, "test": 0x20, **{"ota_%d" % i: 0x10 + i for i in range(16)}},
    0x01: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04,
           "efuse": 0x05, "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82,
           "littlefs": 0x83},
}
FLAGS = {"encrypted": 1, "readonly": 2}
APP_ALIGN = 0x10000
DATA_ALIGN = 0x1000
# nvs of MicroPython's own tables without OTA (every flash size): kept there, nothing to erase
STOCK_NVS = (0x9000, 0x6000)
ESPTOOL_BAUD = 460800


class Partition:
    __slots__ = ("name", "type", "subtype", "offset", "size", "flags")

    def __init__(self, name, type, subtype, offset, size, flags=0):
        self.name, self.type, self.subtype = name, type, subtype
        self.offset, self.size, self.flags = offset, size, flags

    @property
    def end(self):
        return self.offset + self.size

    def __repr__(self):
        return "Partition(%s, %d, 0x%02x, 0x%x, 0x%x)" % (self.name, self.type, self.subtype,
                                                          self.offset, self.size)


def board_dir(board):
    d = os.path.join(ROOT, "board", board)
    if not os.path.isfile(os.path.join(d, "board_config.py")):
        raise SystemExit("unknown board %r: no board/%s/board_config.py" % (board, board))
    return d


def load_config(board):
    path = os.path.join(board_dir(board), "board_config.py")
    spec = importlib.util.spec_from_file_location("board_config_" + board, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _number(text):
    return int(text, 0)


def read_table(path):
    """The partitions of an ESP-IDF CSV (name, type, subtype, offset, size[, flags]); every
    offset is explicit in the project's tables."""
    rows = []
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    for cells in csv.reader(lines):
        cells = [c.strip() for c in cells]
        name, typ, sub, off, size = cells[:5]
        t = TYPES[typ] if typ in TYPES else _number(typ)
        st = SUBTYPES.get(t, {}).get(sub)
        st = _number(sub) if st is None else st
        flags = 0
        for fl in (cells[5].split(":") if len(cells) > 5 and cells[5] else ()):
            flags |= FLAGS[fl]
        rows.append(Partition(name, t, st, _number(off), _number(size), flags))
    return rows


def table_binary(rows):
    """The table as the bootloader reads it at 0x8000 (what gen_esp32part.py writes)."""
    body = b"".join(_ENTRY.pack(_MAGIC, p.type, p.subtype, p.offset, p.size,
                                p.name.encode(), p.flags) for p in rows)
    body += _MD5_MAGIC + hashlib.md5(body).digest()
    if len(body) > TABLE_MAX:
        raise ValueError("partition table longer than 0x%x bytes" % TABLE_MAX)
    return body + b"\xff" * (TABLE_MAX - len(body))


def find(rows, type, subtype=0xFF, label=None):
    """esp32.Partition.find(type, subtype, label): subtype 0xFF matches any."""
    return [p for p in rows if p.type == type and (subtype == 0xFF or p.subtype == subtype)
            and (label is None or p.name == label)]


def check_table(rows, cfg):
    """What makes a table unusable for the meter on this board (empty: none)."""
    bad = []
    names = [p.name for p in rows]
    if len(set(names)) != len(names):
        bad.append("duplicate partition names")
    for p in rows:
        align = APP_ALIGN if p.type == TYPES["app"] else DATA_ALIGN
        if p.offset % align or p.size % DATA_ALIGN or p.size <= 0:
            bad.append("%s misaligned (0x%x, 0x%x)" % (p.name, p.offset, p.size))
        if len(p.name.encode()) > 15:
            bad.append("%s: name longer than 15 bytes" % p.name)
    spans = sorted(rows, key=lambda p: p.offset)
    if spans and spans[0].offset < TABLE_OFFSET + 0x1000:
        bad.append("%s overlaps the partition table" % spans[0].name)
    for a, b in zip(spans, spans[1:]):
        if a.end > b.offset:
            bad.append("%s overlaps %s" % (a.name, b.name))
    if spans and spans[-1].end > cfg.FLASH_SIZE:
        bad.append("%s ends past the %d-byte flash" % (spans[-1].name, cfg.FLASH_SIZE))
    journal = find(rows, TYPES["data"], label=cfg.JOURNAL_PARTITION)
    if len(journal) != 1 or journal[0].size != cfg.JOURNAL_SIZE:
        bad.append("no %d-byte data partition %r" % (cfg.JOURNAL_SIZE, cfg.JOURNAL_PARTITION))
    if not find(rows, TYPES["data"], label="vfs"):
        bad.append("no vfs data partition")
    if not find(rows, TYPES["app"]):
        bad.append("no app partition")
    return bad


def erase_regions(rows, cfg):
    """(name, offset, size) to erase when this table replaces a stock MicroPython table: the
    vfs (a fresh filesystem), the journal (no old filesystem blocks), otadata (blank: the
    bootloader starts ota_0, where the stock app lies) and nvs when it moved."""
    out = []
    for p in rows:
        moved_nvs = p.subtype == SUBTYPES[1]["nvs"] and (p.offset, p.size) != STOCK_NVS
        if p.type == TYPES["data"] and (p.name in ("vfs", cfg.JOURNAL_PARTITION) or moved_nvs
                                        or p.subtype == SUBTYPES[1]["ota"]):
            out.append((p.name, p.offset, p.size))
    return out


def esptool(cfg, port, after_reset=True):
    cmd = [sys.executable, "-m", "esptool", "--chip", cfg.CHIP]
    if port != "auto":
        cmd += ["--port", port]
    cmd += ["--baud", str(ESPTOOL_BAUD)]
    return cmd if after_reset else cmd + ["--after", "no-reset"]


def table_commands(board, cfg, port, out_root):
    """The esptool commands of --write-table: every erase first, the table last, so an
    interrupted run leaves the stock table over erased ranges (it formats; it never hangs)."""
    rows = read_table(os.path.join(board_dir(board), "partitions.csv"))
    bad = check_table(rows, cfg)
    if bad:
        raise SystemExit("board/%s/partitions.csv: %s" % (board, "; ".join(bad)))
    path = os.path.join(out_root, "tables", board + "-partition-table.bin")
    cmds = [esptool(cfg, port, after_reset=False)
            + ["erase-region", "0x%x" % off, "0x%x" % size]
            for _, off, size in erase_regions(rows, cfg)]
    cmds.append(esptool(cfg, port) + ["write-flash", "--flash-size", "keep",
                                      "0x%x" % TABLE_OFFSET, path])
    return rows, path, cmds


def write_table(board, cfg, port, out_root, dry_run):
    rows, path, cmds = table_commands(board, cfg, port, out_root)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(table_binary(rows))
    for name, off, size in erase_regions(rows, cfg):
        print("erase %-8s 0x%06x..0x%06x (%d KiB)" % (name, off, off + size, size // 1024))
    for cmd in cmds:
        print(shlex.join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)


def _compile(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run([tool("mpy-cross"), "-o", dst, src], check=True)


def build(board, out_root):
    """Compile the board's deployment into out_root/<board>/; returns that folder."""
    here = board_dir(board)
    out = os.path.join(out_root, board)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    jobs = [(os.path.join(here, "board_config.py"), os.path.join(out, "board_config.mpy"))]
    for top, pkg in PACKAGES:
        src_root = os.path.join(ROOT, top)
        for dirpath, _, files in os.walk(os.path.join(src_root, pkg)):
            for f in sorted(files):
                if f.endswith(".py"):
                    src = os.path.join(dirpath, f)
                    jobs.append((src, os.path.join(out, os.path.relpath(src, src_root)[:-3]
                                                   + ".mpy")))
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(lambda j: _compile(*j), jobs))
    shutil.copy(os.path.join(ROOT, "firmware", "main.py"), os.path.join(out, "main.py"))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print("built %d modules for %s into %s (%d bytes)" % (len(jobs) + 1, board, out, size))
    return out


def build_config(board, out_root):
    """Only board_config compiled, for --config-only; returns its folder."""
    out = os.path.join(out_root, board + "-config")
    shutil.rmtree(out, ignore_errors=True)
    _compile(os.path.join(board_dir(board), "board_config.py"),
             os.path.join(out, "board_config.mpy"))
    return out


def board_paths(out):
    """The board's paths of the code files a build folder puts there."""
    return sorted("/" + os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/")
                  for d, _, fs in os.walk(out) for f in fs)


# Prints every .py/.mpy on the board's filesystem, one absolute path a line (one exec() line,
# so that the printed command can be pasted into a shell).
LIST_CODE = "exec(%r)" % ('import os\n'
                          'def w(d):\n'
                          ' for e in os.ilistdir(d):\n'
                          '  p=d+e[0]\n'
                          '  if e[1]&0x4000:w(p+"/")\n'
                          '  elif p.endswith(".py") or p.endswith(".mpy"):print(p)\n'
                          'w("/")\n')


def stale(listed, puts):
    """Code files on the board that the deployment does not put: removed before the copy."""
    keep = set(puts)
    return sorted(p for p in listed if p.endswith((".py", ".mpy")) and p not in keep)


def fit_check(board, cfg, force):
    """Refuse the .mpy copy on a board without PSRAM (SystemExit) unless forced."""
    if getattr(cfg, "PSRAM", 0) or force:
        return
    raise SystemExit(
        "refused: %s has no PSRAM. The meter loaded from .mpy files needs ~%d KB of heap; "
        "this board has ~%d KB at best, and Wi-Fi fails once the heap has grown into IDF "
        "memory. Build the frozen image (docs/boards.md, 'Production image': make -C "
        "ports/esp32 BOARD_DIR=%s) and then deploy with --config-only; --force copies the "
        ".mpy files anyway (bench only)."
        % (board, LOADED_NEED_KB, HEAP_NO_PSRAM_KB, os.path.join(ROOT, "board", board)))


def copy_commands(out, port, key, secrets, puts, remove):
    mp = [tool("mpremote")] + ([] if port == "auto" else ["connect", port])
    cmds = []
    if remove:
        cmds.append(mp + ["fs", "rm"] + [":" + p for p in remove])
    cmds.append(mp + ["fs", "cp", "-r", out + "/.", ":"])
    if secrets:
        cmds.append(mp + ["fs", "cp", secrets, ":secrets.json"])
    if key:
        cmds.append(mp + ["fs", "cp", key, ":meter.key"])
    cmds.append(mp + ["reset"])
    return mp, cmds


def deploy(out, port, key, secrets=None, dry_run=False):
    for path, what in ((key, "key"), (secrets, "secrets")):
        if path and not os.path.isfile(path):
            raise SystemExit("%s file %s not found" % (what, path))
    puts = board_paths(out)
    for p in puts:
        print("put", p)
    mp, _ = copy_commands(out, port, key, secrets, puts, ())
    list_cmd = mp + ["exec", LIST_CODE]
    if dry_run:
        print(shlex.join(list_cmd))
        print("remove: every .py/.mpy that command lists and the list above does not hold")
        remove = ()
    else:
        listed = subprocess.run(list_cmd, check=True, capture_output=True, text=True).stdout
        remove = stale([ln.strip() for ln in listed.splitlines() if ln.startswith("/")], puts)
        for p in remove:
            print("remove", p)
    for cmd in copy_commands(out, port, key, secrets, puts, remove)[1]:
        print(shlex.join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)


def main(argv=None):
    p = argparse.ArgumentParser(description="build and deploy the meter firmware")
    p.add_argument("--board", default="esp32_devkitc")
    p.add_argument("--port", default="auto", help="serial port, or auto")
    p.add_argument("--out", default=os.path.join(ROOT, "build"))
    p.add_argument("--key", help="per-meter key file to provision as /meter.key")
    p.add_argument("--secrets", help="secrets.json to provision as /secrets.json")
    p.add_argument("--build-only", action="store_true")
    p.add_argument("--write-table", action="store_true",
                   help="erase vfs/journal and write the board's partition table (esptool)")
    p.add_argument("--config-only", action="store_true",
                   help="copy only board_config, secrets and key (onto a frozen image)")
    p.add_argument("--force", action="store_true", help="copy .mpy files without PSRAM")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = p.parse_args(argv)
    cfg = load_config(a.board)
    if a.write_table:
        write_table(a.board, cfg, a.port, a.out, a.dry_run)
        return
    if a.config_only:
        deploy(build_config(a.board, a.out), a.port, a.key, a.secrets, a.dry_run)
        return
    if not a.build_only:
        fit_check(a.board, cfg, a.force)
    out = build(a.board, a.out)
    if not a.build_only:
        deploy(out, a.port, a.key, a.secrets, a.dry_run)


if __name__ == "__main__":
    main()
