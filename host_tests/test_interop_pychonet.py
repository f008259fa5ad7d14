"""Interop: pychonet 2.8 (Home Assistant's ECHONET Lite library) discovers the firmware's
B-route on a real UDP socket at 127.0.0.2:3610 and reads E0, E1, D3, D7, E7, E8."""

import asyncio
import datetime
import threading

import pytest

pychonet = pytest.importorskip("pychonet")

from pychonet import ECHONETAPIClient, LowVoltageSmartElectricEnergyMeter  # noqa: E402
from pychonet.lib.udpserver import UDPServer  # noqa: E402

from broute_udp import SIM_MASTER_KEY, BrouteUdpServer, udp_module  # noqa: E402
from demo_meter import DemoMeter  # noqa: E402
from meter.metering.registers import FWD  # noqa: E402

METER_IP = "127.0.0.2"


@pytest.fixture
def served_meter():
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 9, 0), unit=0x01, coefficient=10,
                   power_w=2345, current_ma=23_450, radio=udp_module(METER_IP, 3610),
                   broute_key=SIM_MASTER_KEY)
    dm.advance(5 * 3600)
    lock = threading.Lock()
    server = BrouteUdpServer(dm).serve_in_thread(lock)
    yield dm, server
    server.close()


async def read_meter():
    udp = UDPServer(local_ip="127.0.0.1")
    udp.run("127.0.0.1", 3610, asyncio.get_running_loop())
    api = ECHONETAPIClient(udp)
    api.configure(message_timeout=50, logger=lambda *a, **k: None)
    try:
        assert await api.discover(METER_IP)
        instances = api.state[METER_IP]["instances"]
        assert instances == {0x02: {0x88: {0x01: instances[0x02][0x88][0x01]}}}
        assert await api.getAllPropertyMaps(METER_IP, 0x02, 0x88, 0x01)
        meter = LowVoltageSmartElectricEnergyMeter(METER_IP, api)
        values = await meter.update([0xE0, 0xE1, 0xD3, 0xD7, 0xE7, 0xE8])
        return api, values
    finally:
        udp.close()


def test_pychonet_discovers_the_meter_and_reads_energy_power_and_current(served_meter):
    dm, server = served_meter
    api, v = asyncio.run(read_meter())
    assert api.state[METER_IP]["uid"]  # identification 0x83 was decoded
    assert v[0xE0] == dm.regs.count[FWD] > 0
    assert v[0xE1] == 0.1  # unit code 01
    assert v[0xD3] == 10
    assert v[0xD7] == 8
    assert v[0xE7] == 2345
    assert v[0xE8] == {"r_phase_amperes": 23.5, "t_phase_amperes": None}
    # kWh as a HEMS computes it = register count x coefficient x unit
    assert abs(v[0xE0] * v[0xD3] * v[0xE1] - 2.345 * 5) < 1.0
    assert dm.service.count[0] >= 3 and server.broute.count[4] >= 3


async def discover_by_multicast():
    """What Home Assistant does with no host configured: a multicast Get of the instance
    list to 224.0.23.0; each node that answers is reported to discover_callback."""
    udp = UDPServer(local_ip="127.0.0.1")  # joins the group, multicasts out of loopback
    udp.run("127.0.0.1", 3610, asyncio.get_running_loop())
    api = ECHONETAPIClient(udp)
    found = asyncio.Event()
    hosts = set()

    async def on_discovered(host):
        hosts.add(host)
        if host == METER_IP:
            found.set()

    api.configure(message_timeout=50, logger=lambda *a, **k: None,
                  discover_callback=on_discovered)
    probe = asyncio.ensure_future(api.discover())  # waits for nobody: nodes answer unicast
    try:
        await asyncio.wait_for(found.wait(), 5)
        assert await api.discover(METER_IP)  # then as after any discovery: the node's details
        return api, hosts
    finally:
        probe.cancel()
        udp.close()


def test_pychonet_discovers_the_meter_by_multicast(served_meter):
    dm, server = served_meter
    api, hosts = asyncio.run(discover_by_multicast())
    assert METER_IP in hosts  # its address came from the unicast answer to the multicast
    assert api.state[METER_IP]["instances"][0x02][0x88][0x01] is not None
    assert api.state[METER_IP]["uid"]
