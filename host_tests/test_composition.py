"""The composition root is the only place that wires the core, the board-HAL contract is
declared (never probed), and the core owns no time: checked on the tree and on meters."""

import ast
import os

import pytest

from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.uplink import FakeUplink
from meter.assembly import build_meter
from meter.hal import Board
from meter.storage import records as R
from meter.storage.store import keep_map
from paths import BOARD, FIRMWARE, HOST_TESTS, ROOT

KEY = b"composition-test-key-0123456789!"
TOOLS = os.path.join(ROOT, "tools")


def sources(*roots):
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    with open(path) as fh:
                        yield path, ast.parse(fh.read(), path)


def imported(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def called(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)


def test_nothing_under_the_core_imports_time_asyncio_or_hardware():
    banned = {"time", "asyncio", "machine", "network", "esp32", "utime", "uasyncio"}
    bad = [(p, m) for p, t in sources(os.path.join(FIRMWARE, "meter")) for m in imported(t)
           if m.split(".")[0] in banned]
    assert bad == []


def test_only_the_ip_modules_endpoint_opens_sockets_and_only_when_created():
    users = []
    for path, tree in sources(os.path.join(FIRMWARE, "meter")):
        top = [m for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               for m in imported(ast.Module(body=[node], type_ignores=[]))]
        assert "socket" not in top, path
        if "socket" in imported(tree):
            users.append(os.path.relpath(path, FIRMWARE))
    assert users == [os.path.join("meter", "broute", "radio", "udp.py")]


def test_the_core_never_probes_the_board_hal():
    bad = []
    for path, tree in sources(os.path.join(FIRMWARE, "meter")):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                    "getattr", "hasattr") and isinstance(node.args[0], ast.Name) and \
                    node.args[0].id == "hal":
                bad.append(path)
    assert bad == []


# The constructors of the wired parts: only the sub-assemblies (and the parts' own unit
# tests, which build one part against fakes) may call them; tools and rigs call
# build_meter() or a sub-assembly (storage.assembly, control.assembly, outage.assembly).
WIRED = {"Journal", "Store", "Limiter", "ReservationTable", "CommandProcessor", "LastGasp",
         "LastGaspPlatform", "BRoute", "Meter", "Breaker", "Drill", "AuditLog"}


def test_no_tool_or_rig_wires_the_core_by_hand():
    allowed_assemblies = {os.path.join(FIRMWARE, "meter", "assembly.py")}
    for pkg in ("storage", "control", "outage"):
        allowed_assemblies.add(os.path.join(FIRMWARE, "meter", pkg, "assembly.py"))
    shells = [p for p, _ in sources(TOOLS)] + [
        os.path.join(HOST_TESTS, "rigs.py"), os.path.join(HOST_TESTS, "remote_rig.py"),
        os.path.join(FIRMWARE, "main.py"), os.path.join(FIRMWARE, "meter", "app.py")]
    bad = []
    for path in shells:
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        for name in called(tree):
            if name in WIRED and path not in allowed_assemblies:
                bad.append((os.path.relpath(path, ROOT), name))
    assert bad == []


def test_every_board_hal_declares_every_part():
    parts = ("clock", "metrology", "power_good", "relay", "flash", "radio", "broute_key",
             "uplink", "meter_id", "key", "random", "wdt", "reset_kind", "problems")
    b = Board()
    assert all(hasattr(b, p) for p in parts)
    h = HostHal(VirtualClock(wall_s=0), ConstantLoad())
    assert isinstance(h, Board) and all(hasattr(h, p) for p in parts)
    assert h.relay is None and h.flash is None and h.radio is None and h.random is not None
    with open(os.path.join(BOARD, "esp32hal", "factory.py")) as fh:
        tree = ast.parse(fh.read())
    cls = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BoardHal"][0]
    assert [b.id for b in cls.bases] == ["Board"]


def test_a_board_with_nothing_fitted_builds_a_measuring_meter():
    clock = VirtualClock(wall_s=9_000 * 86_400)
    m = build_meter(HostHal(clock, ConstantLoad(1000)))
    assert m.boot() is None
    for _ in range(61):
        m.step()
        m.idle()
        m.serve()
        clock.advance(1000)
    assert m.regs.total_joules(0) == 60_000
    assert (m.store, m.limiter, m.commands, m.lastgasp, m.broute, m.echonet) == (None,) * 6
    assert m.power_poll() == 0 and m.command(b"x" * 60) is None and m.audit() is None


def test_a_fully_fitted_board_builds_every_part_and_boots_once():
    clock = VirtualClock(wall_s=9_000 * 86_400)
    hal = HostHal(clock, ConstantLoad(1000), power_good=ScriptedPowerGood(1),
                  uplink=FakeUplink(), relay=FakeRelay(closed=True), flash=NorFlash(64),
                  key=KEY)
    m = build_meter(hal)  # the key comes from the board when not given
    assert m.store is not None and m.limiter is not None and m.commands is not None
    assert m.lastgasp is not None and m.alarms is not None
    assert m.boot().chain_ok()
    from meter.errors import SettingError
    with pytest.raises(SettingError):
        m.boot()


def test_the_product_keeps_every_record_type_it_writes():
    hal = HostHal(VirtualClock(wall_s=9_000 * 86_400), ConstantLoad(), relay=FakeRelay(),
                  flash=NorFlash(64), power_good=ScriptedPowerGood(1))
    j = build_meter(hal, key=KEY).journal
    want = keep_map()
    for rtype in range(R.FIRST_TYPE, R.LAST_TYPE + 1):
        assert j.kept(rtype) == want.get(rtype, 1), rtype
    assert j.kept(R.REC_LIMITER) == 3 and j.kept(R.REC_AUDIT) == R.AUDIT_KEYS


def test_the_campaign_and_the_wear_projection_run_the_products_record_set():
    import power_cut_campaign
    import wear

    want = keep_map()
    m = power_cut_campaign.boot(NorFlash(power_cut_campaign.SECTORS))
    w, _, _ = wear.product_meter(64)
    for meter in (m, w):
        for rtype in range(R.FIRST_TYPE, R.LAST_TYPE + 1):
            assert meter.journal.kept(rtype) == want.get(rtype, 1)
        assert meter.limiter is not None and meter.commands is not None
