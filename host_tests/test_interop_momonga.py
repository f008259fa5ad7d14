"""Interop: momonga 0.7 opens a PANA session through the emulated SKSTACK IP Wi-SUN
dongle (tools/wisun_emulator.py) on a pseudo-terminal and reads the firmware's meter
object: instantaneous power and current, cumulative energy, D0 and the whole hour of
1-minute history through EF/EE."""

import datetime
import logging
import threading

import pytest

momonga = pytest.importorskip("momonga")

from demo_meter import DemoMeter, wall_minute  # noqa: E402
from meter import caltime  # noqa: E402
from meter.metering.registers import FWD, REV  # noqa: E402
from wisun_emulator import (DEFAULT_PASSWORD, DEFAULT_RBID, DirectMeterPort,  # noqa: E402
                            PtyEmulator, SkDongle, WisunDriverPort)

START = datetime.datetime(2026, 11, 28, 8, 0)
UNIT_KWH = 0.01  # E1 code 02


@pytest.fixture(scope="module", params=["service_direct", "through_the_wisun_driver"])
def session(request):
    """The meter behind the emulated dongle: its ECHONET service directly, or the long way
    through the firmware's Wi-SUN module driver and B-route pump."""
    logging.getLogger("momonga").setLevel(logging.WARNING)
    settings = dict(start=START, unit=0x02, power_w=1800, export_w=300, current_ma=7_560)
    lock = threading.Lock()
    if request.param == "service_direct":
        dm = DemoMeter(**settings)
        port = DirectMeterPort(dm, lock)
    else:
        port = WisunDriverPort(lock, **settings)  # the meter with the Wi-SUN module fitted
        dm = port.meter
    dm.advance(2 * 3600 + 15)  # 10:00:15
    dongle = SkDongle(port)
    emu = PtyEmulator(dongle).start()
    mo = momonga.Momonga(DEFAULT_RBID, DEFAULT_PASSWORD, emu.path)
    mo.internal_xmit_interval = 0
    mo.recv_timeout = 5
    mo.open()
    yield dm, dongle, mo
    mo.close()
    emu.stop()
    assert emu.errors == []


def test_momonga_opens_a_session_and_reads_power_current_and_energy(session):
    dm, dongle, mo = session
    assert mo.energy_unit == UNIT_KWH and mo.energy_coefficient == 1
    assert mo.get_instantaneous_power() == 1500
    assert mo.get_instantaneous_current() == {"r phase current": pytest.approx(7.6),
                                              "t phase current": None}
    assert mo.get_measured_cumulative_energy() == pytest.approx(dm.regs.count[FWD] * UNIT_KWH)
    assert mo.get_measured_cumulative_energy(reverse=True) == pytest.approx(
        dm.regs.count[REV] * UNIT_KWH)
    d0 = mo.get_one_minute_measured_cumulative_energy()
    assert d0["timestamp"] == datetime.datetime(2026, 11, 28, 10, 0)
    s = dm.capture.ring.slot(wall_minute(d0["timestamp"]))
    assert d0["cumulative energy"]["normal direction"] == pytest.approx(
        dm.capture.ring.fwd[s] * UNIT_KWH)
    fixed = mo.get_cumulative_energy_measured_at_fixed_time()
    assert fixed["timestamp"] == datetime.datetime(2026, 11, 28, 10, 0)
    port = dongle.meter_port
    announced = 0
    if isinstance(port, WisunDriverPort):  # every frame really went through the driver
        assert port.broute.count[4] == dongle.frames_in
        announced = port.broute.count[7]  # INF D5 sent to the HEMS when it joined
        assert announced == 1
    assert dongle.session and dongle.frames_out == dongle.frames_in + announced


def test_momonga_collects_the_whole_last_hour_of_one_minute_values(session):
    dm, dongle, mo = session
    now = datetime.datetime(*caltime.ymdhm(dm.minute))
    got = {}
    for read in range(6):
        for point in mo.get_historical_cumulative_energy_3(
                now - datetime.timedelta(minutes=10 * read), 10):
            got[point["timestamp"]] = point["cumulative energy"]
    assert len(got) == 60
    ring = dm.capture.ring
    for ts, energy in got.items():
        s = ring.slot(wall_minute(ts))
        assert s >= 0, ts
        assert energy["normal direction"] == pytest.approx(ring.fwd[s] * UNIT_KWH)
        assert energy["reverse direction"] == pytest.approx(ring.rev[s] * UNIT_KWH)


def test_a_wrong_password_fails_the_join():
    dm = DemoMeter(start=START)
    dongle = SkDongle(DirectMeterPort(dm))
    with PtyEmulator(dongle) as emu:
        mo = momonga.Momonga(DEFAULT_RBID, "WRONGPASSWD0", emu.path, join_retries=1)
        mo.internal_xmit_interval = 0
        with pytest.raises(momonga.MomongaSkJoinFailure):
            mo.open()
    assert not dongle.session and dongle.frames_in == 0
