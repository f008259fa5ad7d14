"""ECHONET Lite multicast on the loopback interface: the host UDP module (the simulation's
B-route) joins 224.0.23.0, so a HEMS on this host discovers the meter by a multicast Get and
hears its start-up instance-list announcement. Only 127.0.0.0/8 and the group on the
loopback interface are used."""

import datetime
import socket
import threading
import time

from broute_udp import SIM_MASTER_KEY, BrouteUdpServer, udp_module
from demo_meter import DemoMeter
from echonet_frames import NODE, decode, request
from meter.broute.radio.udp import GROUP, PORT, UdpEndpoint

METER_IP = "127.0.0.3"  # other tests serve 127.0.0.2 and 127.0.0.5: replies are told apart
LOOPBACK = "127.0.0.1"


def group_listener():
    """A socket that receives what is sent to 224.0.23.0:3610 on the loopback interface."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((GROUP, PORT))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(GROUP) + socket.inet_aton(LOOPBACK))
    s.settimeout(0.2)
    return s


def hems_socket():
    """A HEMS client on the loopback: its multicasts leave by the loopback interface."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
    s.settimeout(0.2)
    return s


def frames_from(sock, source_ip, seconds=3.0):
    """Decoded frames received from source_ip within `seconds` (others are ignored)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, addr = sock.recvfrom(1500)
        except socket.timeout:
            continue
        if addr[0] == source_ip:
            yield decode(data), addr


def served(ip=METER_IP):
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 9, 0), power_w=1200,
                   radio=udp_module(ip, PORT), broute_key=SIM_MASTER_KEY)
    dm.advance(600)
    return dm, BrouteUdpServer(dm)


def test_the_host_endpoint_joins_the_group_on_the_loopback_interface():
    ep = UdpEndpoint(METER_IP, 0, GROUP, METER_IP)
    try:
        assert ep.multicast and ep.group_addr == (GROUP, 0)
        assert ep.group_sock is not None  # bound to a unicast address: a second socket
    finally:
        ep.close()
    assert UdpEndpoint(METER_IP, 0, None).group_sock is None  # group=None: unicast only


def test_the_start_up_announcement_reaches_a_listener_on_the_group():
    listener = group_listener()
    dm, server = served()
    try:
        server.serve_in_thread(threading.Lock())
        got = next(frames_from(listener, METER_IP), None)
        assert got is not None, "no announcement on 224.0.23.0 from the meter"
        frame, addr = got
        assert addr == (METER_IP, PORT)  # sent from the meter's own address
        assert frame["esv"] == 0x73 and frame["seoj"] == NODE and frame["deoj"] == NODE
        assert frame["props"] == [(0xD5, b"\x01\x02\x88\x01")]
    finally:
        server.close()
        listener.close()


def test_a_multicast_get_from_the_host_reaches_the_meter_and_is_answered_unicast():
    dm, server = served()
    hems = hems_socket()
    try:
        server.serve_in_thread(threading.Lock())
        hems.sendto(request(0x62, [0xD6, 0x83], deoj=0x0EF000, tid=0x4321), (GROUP, PORT))
        got = next((f for f in frames_from(hems, METER_IP) if f[0]["tid"] == 0x4321), None)
        assert got is not None, "the multicast Get was not answered"
        frame, addr = got
        assert addr == (METER_IP, PORT)  # a unicast reply from the meter's address
        assert frame["esv"] == 0x72 and frame["seoj"] == NODE
        assert dict(frame["props"])[0xD6] == b"\x01\x02\x88\x01"
        hems.sendto(request(0x62, [0xE0], tid=0x4322), (GROUP, PORT))  # to the meter object
        frame, _ = next(f for f in frames_from(hems, METER_IP) if f[0]["tid"] == 0x4322)
        assert frame["props"][0] == (0xE0, dm.regs.count[0].to_bytes(4, "big"))
    finally:
        server.close()
        hems.close()
