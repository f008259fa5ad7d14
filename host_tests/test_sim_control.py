"""The whole meter in `make sim`: the simulated relay with the household downstream of it,
a head-end command sent with tools/headend.py to a running tools/sim.py over its loopback
command port, the breaker tripping under load, and the B-route announcing itself on the
ECHONET multicast group. Also the simulated relay and the downstream load on their own."""

import os
import socket
import subprocess
import sys
import time

from paths import ROOT

from headend import HeadEnd
from hosthal.clock import VirtualClock
from hosthal.downstream import Downstream
from hosthal.loads import ConstantLoad
from hosthal.pins import TimedRelay
from meter.metering.samples import Sample
from test_broute_multicast import frames_from, group_listener

SIM = os.path.join(ROOT, "tools", "sim.py")
HEADEND = os.path.join(ROOT, "tools", "headend.py")
METER_ID = b"SIM00001"
BROUTE_IP = "127.0.0.6"  # other tests serve 127.0.0.2, .3 and .5


def test_the_relay_feedback_follows_its_command_after_the_operate_time():
    clock = VirtualClock()
    relay = TimedRelay(clock, operate_ms=20)
    relay.command(False)
    assert not relay.commanded() and relay.sensed()  # contacts still moving
    clock.advance(19)
    assert relay.sensed()
    clock.advance(1)
    assert not relay.sensed() and relay.operations == 1
    relay.stuck = True  # welded contacts: the feedback stays open
    relay.command(True)
    clock.advance(1000)
    assert relay.commanded() and not relay.sensed()


def test_the_load_downstream_of_an_open_relay_reads_zero_but_the_supply_voltage_stays():
    clock = VirtualClock()
    relay = TimedRelay(clock, operate_ms=20)
    load = Downstream(ConstantLoad(watts=3000, volt_dv=1010), relay)
    s = Sample()
    load.poll(s, clock.ticks_ms())
    clock.advance(1000)
    assert load.poll(s, clock.ticks_ms()) and s.p_w == 3000 and s.e_fwd == 3000
    relay.command(False)
    clock.advance(1000)
    assert load.poll(s, clock.ticks_ms())
    assert (s.p_w, s.i_ma, s.e_fwd, s.v_dv) == (0, 0, 0, 1010) and load.cut_polls == 1
    relay.command(True)
    clock.advance(1000)
    assert load.poll(s, clock.ticks_ms()) and s.p_w == 3000


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_a_head_end_contract_limit_sent_to_a_running_sim_trips_the_breaker_under_load(tmp_path):
    key = bytes(range(32))
    (tmp_path / "meter.key").write_bytes(key)
    port = free_udp_port()
    listener = group_listener()
    # 23:00 with a 3 kW EV charging: about 39 A drawn, under the 60 A contract limit
    p = subprocess.Popen(
        [sys.executable, SIM, "--speed", "300", "--duration", "15m", "--start",
         "2026-11-28T23:00", "--ev", "3000", "--fresh", "--flash", str(tmp_path / "f.bin"),
         "--key", str(tmp_path / "meter.key"), "--broute", "%s:3610" % BROUTE_IP,
         "--commands", "127.0.0.1:%d" % port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith("head-end commands on"):
                break
        assert lines and lines[-1].startswith("head-end commands on 127.0.0.1:%d" % port), \
            "".join(lines) + p.stderr.read()
        wall_minute = int(lines[-1].split("wall minute ")[1].split(")")[0])
        # the request as the head-end CLI prints it (hex), sent as the text of a datagram
        req_hex = subprocess.run(
            [sys.executable, HEADEND, "--meter-id", METER_ID.decode(), "--key-hex", key.hex(),
             "--counter", "1", "--expiry", str(wall_minute + 30), "contract", "--limit", "20"],
            capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(10)
        try:
            c.sendto(req_hex.encode(), ("127.0.0.1", port))
            reply, _ = c.recvfrom(4096)
        finally:
            c.close()
        resp = HeadEnd(METER_ID, key).parse(bytes.fromhex(reply.decode().strip()),
                                            check_tag=False)
        assert resp.status == 0 and resp.counter == 1, resp
        out, err = p.communicate(timeout=60)
        announced = list(frames_from(listener, BROUTE_IP, seconds=0.5))
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        listener.close()
    text = "".join(lines) + out
    assert p.returncode == 0, err
    assert "command: contract #1: ok" in text, text
    assert "limit 20 A (contract)" in text
    assert "breaker open (trips 1" in text and "breaker locked" in text, text
    minute_lines = [ln.split() for ln in text.splitlines() if ln.startswith("2026-11-28 23:")
                    and len(ln.split()) == 8]
    assert minute_lines and minute_lines[-1][4] == "0"  # P W: the load is cut off
    assert "  breaker locked, limit 20 A (contract 20 A), trips 4" in text, text
    assert "head-end commands 1 (unanswered 0)" in text
    assert "ECHONET fault status (0x88): 0x42 none" in text
    # the sim's B-route told the group it is there (start-up instance list, INF of D5)
    assert any(f["esv"] == 0x73 and f["props"][0][0] == 0xD5 for f, _ in announced)


def test_the_sim_still_runs_a_meter_without_relay():
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, SIM, "--speed", "0", "--duration", "5m", "--no-flash",
                        "--broute", "off", "--no-relay"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "breaker" not in r.stdout and time.monotonic() - t0 < 60
