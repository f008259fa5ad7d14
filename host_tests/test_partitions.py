"""Every board folder is a MicroPython ESP32 out-of-tree board definition (BOARD_DIR) whose
image carries the meter's partition table, and every table is usable: aligned, no overlap,
inside the flash, nvs and phy_init present, app slots that hold a frozen image with margin,
the journal found the way esp32.Partition.find finds it, an OTA pair on the 8 MiB S3.
Checked on the host only: the ESP32 port itself is not built here."""

import ast
import hashlib
import json
import os
import re
import struct

import pytest

import deploy
from paths import BOARD, ROOT

BOARDS = sorted(d for d in os.listdir(BOARD)
                if os.path.isfile(os.path.join(BOARD, d, "board_config.py")))

# MicroPython's ESP32_GENERIC app image (v1.2x) is ~1.6 MB; the frozen firmware adds its
# bytecode, counted as the .mpy total of the deployment build (measured: ~113 KB).
STOCK_APP_BYTES = 1_600_000
MARGIN_PCT = 10
MIB = 1024 * 1024
APP, DATA = 0x00, 0x01
SUBTYPE_NVS, SUBTYPE_PHY, SUBTYPE_OTA = 0x02, 0x01, 0x00
IDF_DATA_SUBTYPES = set(range(0x00, 0x07)) | set(range(0x80, 0x84))  # ota..undefined, fat..
BOARD_DIR_FILES = ("mpconfigboard.cmake", "mpconfigboard.h", "sdkconfig.board", "board.json",
                   "manifest.py", "partitions.csv", "board_config.py")


def table(name):
    return deploy.read_table(os.path.join(BOARD, name, "partitions.csv"))


def sdkconfig(name):
    out = {}
    with open(os.path.join(BOARD, name, "sdkconfig.board")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                out[k] = v
    return out


def cmake(name):
    with open(os.path.join(BOARD, name, "mpconfigboard.cmake")) as f:
        text = re.sub(r"#.*", "", f.read())
    sets = {m.group(1): m.group(2).split()
            for m in re.finditer(r"set\((\w+)\s+([^)]*)\)", text)}
    return text, sets


def partition_find(rows, type, subtype=0xFF, label=None):
    """esp32.Partition.find semantics (MicroPython docs): subtype 0xFF matches any."""
    return [p for p in rows if p.type == type and subtype in (0xFF, p.subtype)
            and (label is None or p.name == label)]


def journal_find_args():
    """The (type, subtype) board/esp32hal/flash.py passes to esp32.Partition.find."""
    with open(os.path.join(BOARD, "esp32hal", "flash.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "find":
            subtype = 0xFF
            for kw in node.keywords:
                if kw.arg == "subtype":
                    subtype = ast.literal_eval(kw.value)
            if len(node.args) > 1:
                subtype = ast.literal_eval(node.args[1])
            assert ast.unparse(node.args[0]).endswith("TYPE_DATA")
            return DATA, subtype
    raise AssertionError("flash.py does not call esp32.Partition.find")


@pytest.fixture(scope="module")
def frozen_image_bytes(tmp_path_factory):
    out = deploy.build("esp32_devkitc", str(tmp_path_factory.mktemp("build")))
    firmware = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    assert 60_000 < firmware < 400_000
    return STOCK_APP_BYTES + firmware


@pytest.mark.parametrize("name", BOARDS)
def test_every_board_folder_is_an_out_of_tree_board_definition(name):
    for f in BOARD_DIR_FILES:
        assert os.path.isfile(os.path.join(BOARD, name, f)), f
    c = deploy.load_config(name)
    with open(os.path.join(BOARD, name, "board.json")) as f:
        meta = json.load(f)
    assert meta["mcu"] == c.CHIP
    # the merged image (bootloader, table, app) starts at 0x1000 on the ESP32, at 0 on S3/C3
    offset = int(meta["deploy_options"]["flash_offset"], 0)
    assert offset == (0x1000 if c.CHIP == "esp32" else 0)
    with open(os.path.join(BOARD, name, "mpconfigboard.h")) as f:
        header = f.read()
    assert re.search(r'#define MICROPY_HW_BOARD_NAME\s+"[^"]+"', header)
    assert re.search(r'#define MICROPY_HW_MCU_NAME\s+"ESP32', header)


@pytest.mark.parametrize("name", BOARDS)
def test_cmake_sets_the_target_the_port_defaults_and_this_folder(name):
    c = deploy.load_config(name)
    text, sets = cmake(name)
    assert sets["IDF_TARGET"] == [c.CHIP]
    defaults = sets["SDKCONFIG_DEFAULTS"]
    assert defaults[0] == "boards/sdkconfig.base"  # the port's base, relative to ports/esp32
    assert defaults[-1] == "${CMAKE_BINARY_DIR}/sdkconfig.board"  # the board's wins
    assert ("configure_file(${MICROPY_BOARD_DIR}/sdkconfig.board "
            "${CMAKE_BINARY_DIR}/sdkconfig.board @ONLY)") in text
    assert sets["MICROPY_FROZEN_MANIFEST"] == ["${MICROPY_BOARD_DIR}/manifest.py"]
    spiram = [d for d in defaults if "spiram" in d]
    if c.PSRAM:
        assert "boards/sdkconfig.spiram_oct" in spiram  # N8R8: octal PSRAM
    else:
        assert spiram == []


@pytest.mark.parametrize("name", BOARDS)
def test_sdkconfig_names_the_csv_of_this_folder_and_the_flash_size(name):
    c = deploy.load_config(name)
    s = sdkconfig(name)
    assert s["CONFIG_PARTITION_TABLE_CUSTOM"] == "y"
    csv_name = s["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"].strip('"')
    path = csv_name.replace("@MICROPY_BOARD_DIR@", os.path.join(BOARD, name))
    assert os.path.isabs(path) and os.path.isfile(path), csv_name
    assert os.path.samefile(path, os.path.join(BOARD, name, "partitions.csv"))
    sizes = {k for k, v in s.items() if k.startswith("CONFIG_ESPTOOLPY_FLASHSIZE_") and v == "y"}
    assert sizes == {"CONFIG_ESPTOOLPY_FLASHSIZE_%dMB" % (c.FLASH_SIZE // MIB)}
    assert (s.get("CONFIG_SPIRAM") == "y") == bool(c.PSRAM)


@pytest.mark.parametrize("name", BOARDS)
def test_partitions_are_aligned_apart_and_inside_the_flash(name):
    c = deploy.load_config(name)
    rows = table(name)
    for p in rows:
        assert p.offset % (0x10000 if p.type == APP else 0x1000) == 0, p
        assert p.size > 0 and p.size % 0x1000 == 0, p
    spans = sorted((p.offset, p.offset + p.size) for p in rows)
    assert spans[0][0] >= 0x9000  # the table itself is the sector at 0x8000
    for (_, a1), (b0, _) in zip(spans, spans[1:]):
        assert a1 <= b0, "partitions overlap"
    assert spans[-1][1] <= c.FLASH_SIZE
    assert len({p.name for p in rows}) == len(rows)
    assert deploy.check_table(rows, c) == []


@pytest.mark.parametrize("name", BOARDS)
def test_nvs_and_phy_init_are_present(name):
    rows = table(name)
    assert [p.name for p in partition_find(rows, DATA, SUBTYPE_NVS)] == ["nvs"]
    assert [p.name for p in partition_find(rows, DATA, SUBTYPE_PHY)] == ["phy_init"]
    assert partition_find(rows, DATA, label="vfs")


@pytest.mark.parametrize("name", BOARDS)
def test_every_app_slot_holds_a_frozen_image_with_margin(name, frozen_image_bytes):
    apps = partition_find(table(name), APP)
    assert apps
    for p in apps:
        assert p.size * 100 >= frozen_image_bytes * (100 + MARGIN_PCT), (p, frozen_image_bytes)


@pytest.mark.parametrize("name", BOARDS)
def test_the_journal_is_found_as_esp32_partition_find_finds_it(name):
    c = deploy.load_config(name)
    rows = table(name)
    typ, subtype = journal_find_args()
    found = partition_find(rows, typ, subtype, label=c.JOURNAL_PARTITION)
    assert len(found) == 1
    j = found[0]
    assert j.size == c.JOURNAL_SIZE and j.offset % 0x1000 == 0
    assert j.subtype not in IDF_DATA_SUBTYPES  # no IDF component and no vfs claims it
    assert j.subtype == subtype or subtype == 0xFF


def test_the_8mib_s3_keeps_an_ota_pair():
    rows = table("esp32_s3_devkitc")
    by = {p.name: p for p in rows}
    assert by["otadata"].type == DATA and by["otadata"].subtype == SUBTYPE_OTA
    assert by["otadata"].size == 0x2000
    assert (by["ota_0"].type, by["ota_0"].subtype) == (APP, 0x10)
    assert (by["ota_1"].type, by["ota_1"].subtype) == (APP, 0x11)
    assert by["ota_0"].size == by["ota_1"].size
    assert by["ota_0"].offset == 0x10000  # where a stock image's app already lies
    assert not partition_find(rows, APP, 0x00)  # no factory: blank otadata boots ota_0


@pytest.mark.parametrize("name", [b for b in BOARDS
                                  if deploy.load_config(b).FLASH_SIZE == 4 * MIB])
def test_4mib_boards_keep_one_factory_slot(name, frozen_image_bytes):
    """The 4 MiB trade-off (docs/boards.md): two slots of a frozen image with margin, the
    64 KiB system area and the journal leave at most 64 KiB for the filesystem."""
    c = deploy.load_config(name)
    apps = partition_find(table(name), APP)
    assert [(p.name, p.subtype) for p in apps] == [("factory", 0x00)]
    slot = -(-frozen_image_bytes * (100 + MARGIN_PCT) // 100 // 0x10000) * 0x10000
    vfs_left = c.FLASH_SIZE - 0x10000 - c.JOURNAL_SIZE - 2 * slot
    assert vfs_left <= 64 * 1024


def _decode(blob):
    rows, pos = [], 0
    while blob[pos:pos + 2] == b"\xaa\x50":
        _, t, st, off, size, label, flags = struct.unpack_from("<2sBBLL16sL", blob, pos)
        rows.append((label.rstrip(b"\0").decode(), t, st, off, size, flags))
        pos += 32
    assert blob[pos:pos + 16] == b"\xeb\xeb" + b"\xff" * 14
    assert blob[pos + 16:pos + 32] == hashlib.md5(blob[:pos]).digest()
    assert blob[pos + 32:] == b"\xff" * (len(blob) - pos - 32)
    return rows


@pytest.mark.parametrize("name", BOARDS)
def test_the_binary_table_is_what_the_bootloader_reads(name):
    rows = table(name)
    blob = deploy.table_binary(rows)
    assert len(blob) == 0xC00
    assert _decode(blob) == [(p.name, p.type, p.subtype, p.offset, p.size, p.flags)
                             for p in rows]


def test_the_journal_entry_bytes_match_the_esp_idf_layout():
    blob = deploy.table_binary(table("esp32_devkitc"))
    entry = (bytes.fromhex("aa50" "01" "40" "00003c00" "00000400") + b"journal" + b"\0" * 9
             + b"\0" * 4)
    assert blob[4 * 32:5 * 32] == entry


@pytest.mark.parametrize("broken, why", [
    ([("factory", APP, 0x00, 0x18000, 0x1F0000)], "misaligned"),
    ([("extra", DATA, 0x82, 0x3F0000, 0x20000)], "overlaps"),
    ([("tail", DATA, 0x82, 0x400000, 0x1000)], "past the"),
])
def test_check_table_refuses_a_broken_table(broken, why):
    c = deploy.load_config("esp32_devkitc")
    rows = [p for p in table("esp32_devkitc") if p.name not in {b[0] for b in broken}]
    rows += [deploy.Partition(*b) for b in broken]
    assert any(why in problem for problem in deploy.check_table(rows, c))


def test_check_table_refuses_a_table_without_the_journal():
    c = deploy.load_config("esp32_devkitc")
    rows = [p for p in table("esp32_devkitc") if p.name != "journal"]
    assert any("journal" in problem for problem in deploy.check_table(rows, c))


def test_manifests_no_longer_freeze_micropython_lib_hmac():
    for name in BOARDS:
        with open(os.path.join(BOARD, name, "manifest.py")) as f:
            assert "require(" not in f.read(), name
    assert os.path.isfile(os.path.join(ROOT, "firmware", "meter", "mac.py"))
