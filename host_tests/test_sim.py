"""make sim: the simulated meter prints its minutes, stops cleanly and serves the B-route."""

import os
import signal
import socket
import struct
import subprocess
import sys
import time

from paths import ROOT

SIM = os.path.join(ROOT, "tools", "sim.py")


def run_sim(*args, timeout=120):
    return subprocess.run([sys.executable, SIM, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_a_simulated_hour_prints_a_line_per_minute_and_a_summary():
    r = run_sim("--speed", "0", "--duration", "1h", "--start", "2026-03-01T06:00",
                "--broute", "off", "--no-flash")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("2026-03-01 ")]
    assert len(lines) == 60
    assert lines[0].startswith("2026-03-01 06:01:00") or lines[0].startswith(
        "2026-03-01 06:00:00")
    first_kwh = float(lines[0].split()[2])
    last_kwh = float(lines[-1].split()[2])
    assert last_kwh > first_kwh  # the household used energy
    assert "summary: 3600 simulated seconds" in r.stdout
    assert "rejected 0" in r.stdout


def echonet_get(epcs, tid=0x1234):
    body = struct.pack(">BBH3s3sBB", 0x10, 0x81, tid, b"\x05\xff\x01", b"\x02\x88\x01",
                       0x62, len(epcs))
    return body + b"".join(bytes([e, 0]) for e in epcs)


def test_the_running_simulation_answers_echonet_gets_and_stops_on_ctrl_c():
    addr = ("127.0.0.5", 3610)
    p = subprocess.Popen([sys.executable, SIM, "--speed", "60", "--no-flash", "--broute",
                          "%s:%d" % addr], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        reply = None
        deadline = time.monotonic() + 30
        while reply is None and time.monotonic() < deadline:
            sock.sendto(echonet_get([0xE0, 0xE1, 0xD7]), addr)
            try:
                reply, _ = sock.recvfrom(512)
            except socket.timeout:
                continue
        assert reply is not None, "no ECHONET reply from the simulation"
        ehd, tid, seoj, deoj, esv, opc = struct.unpack_from(">HH3s3sBB", reply, 0)
        assert (ehd, tid, seoj, esv, opc) == (0x1081, 0x1234, b"\x02\x88\x01", 0x72, 3)
        assert reply[12:14] == b"\xe0\x04"  # E0 with 4 data bytes
        assert reply[18:21] == b"\xe1\x01\x02"  # unit 0.01 kWh
        assert reply[21:24] == b"\xd7\x01\x08"  # 8 digits
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "B-route (ECHONET Lite) on 127.0.0.5:3610, module active" in out
    assert "summary:" in out and "B-route frames received" in out


def test_a_simulation_killed_with_sigkill_resumes_its_registers(tmp_path):
    files = ["--flash", str(tmp_path / "flash.bin"), "--key", str(tmp_path / "meter.key"),
             "--broute", "off", "--quiet"]
    p = subprocess.Popen([sys.executable, SIM, "--speed", "0", *files],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(4)  # several simulated hours flat out
    p.kill()
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    r = run_sim("--speed", "0", "--duration", "10m", *files)
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout and "seal chain verified" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if "E0 forward" in ln][0]
    total = float(line.split()[2])
    gained = float(line.split("(+")[1].rstrip(")"))
    assert total - gained > 0.5  # the hours of household use before the kill survived
    fresh = run_sim("--speed", "0", "--duration", "10m", "--fresh", *files)
    assert "blank meter" in fresh.stdout
