"""The bench console of the host simulation (`tools/sim.py --console`, what `make sim
ARGS="--console"` runs) driven by the host tool's command line (tools/meter_console.py):
the acceptance test, a script with --run, JSON output, and a privileged command refused."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from paths import ROOT

TOOL = os.path.join(ROOT, "tools", "meter_console.py")


def free_udp_port(host="127.0.0.2"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def sim(tmp_path):
    args = [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--console", "--fresh",
            "--quiet", "--speed", "60", "--flash", str(tmp_path / "flash.bin"),
            "--key", str(tmp_path / "meter.key"),
            "--broute", "127.0.0.2:%d" % free_udp_port()]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=ROOT)
    path = None
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("console on "):
            path = line.split()[2]
            break
    assert path, "".join(seen)
    yield path, str(tmp_path / "meter.key"), tmp_path
    p.send_signal(signal.SIGINT)
    try:
        p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()


def tool(*args, timeout=120):
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_the_acceptance_test_passes_against_the_simulation(sim):
    path, key, _ = sim
    r = tool("--port", path, "--key", key, "accept")
    print("\n" + r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "result: PASS (7/7 steps)"
    assert len([x for x in lines if re.match(r"\s*\d+ .+ PASS ", x)]) == 7


def test_a_script_runs_with_json_output_and_stops_at_the_first_error(sim, tmp_path):
    path, key, _ = sim
    script = tmp_path / "bench.txt"
    script.write_text("# a bench script\nid\nregs   # the registers\nbench on\n"
                      "load 1000 5\nfrobnicate\nregs\n")
    r = tool("--port", path, "--key", key, "--json", "--run", str(script))
    assert r.returncode == 1
    replies = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert [x["cmd"] for x in replies] == ["id", "regs", "bench on", "load", "frobnicate"]
    assert replies[0]["meter_id"] == "SIM00001" and replies[2]["bench"] is True
    assert replies[3]["w"] == 1000 and replies[3]["key"] == "meter"
    assert replies[-1]["error"] == "E_UNKNOWN_COMMAND"
    r = tool("--port", path, "bench", "off")
    assert r.returncode == 0 and "bench no" in r.stdout


def test_without_bench_mode_a_signed_injection_is_refused(sim):
    path, key, _ = sim
    r = tool("--port", path, "--key", key, "fail", "1000")
    assert r.returncode == 1
    assert r.stdout.strip().splitlines()[-1].startswith("ERROR E_NOT_BENCH")
    r = tool("--port", path, "--json", "lastgasp")
    assert json.loads(r.stdout)["failures"] == 0
