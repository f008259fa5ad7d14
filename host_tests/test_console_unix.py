"""The bench console for real: the firmware under the MicroPython unix port serving its
console on one end of a pseudo-terminal (host_tests/mpy/console_serve.py), the host tool
(tools/meter_console.py) on the other through pyserial. Also the idle poll's heap check
(host_tests/mpy/console_heap.py, heap_lock)."""

import fcntl
import os
import signal
import subprocess
import time
import tty

import pytest

from paths import MPY_SCENARIOS, ROOT, micropython_env, tool
from test_micropython_unix import mpy_dir, run_script  # noqa: F401  (the compiled firmware)
from meter_console import ConsoleClient, accept, open_port

KEY = b"unix-port-console-meter-key-0001"
SERVE_HEAP = "2m"  # the runner holds a 256 KB simulated flash besides the meter


class UnixMeter:
    """console_serve.py under the unix port on the master side of a fresh pty."""

    def __init__(self, mpy_dir, speed=10, watts=900, bench_pin=0):  # noqa: F811
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        fl = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.path = os.ttyname(self.slave)
        env = micropython_env(mpy_dir)
        env.update(CONSOLE_FD=str(self.master), CONSOLE_KEY=KEY.hex(),
                   CONSOLE_SPEED=str(speed), CONSOLE_WATTS=str(watts),
                   CONSOLE_BENCH_PIN=str(bench_pin))
        self.proc = subprocess.Popen(
            [tool("micropython"), "-X", "heapsize=" + SERVE_HEAP,
             os.path.join(MPY_SCENARIOS, "console_serve.py")],
            pass_fds=(self.master,), env=env, cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY MPYCON01"), line + self.proc.stdout.read()
        self.ser = open_port(self.path, 115200)

    def client(self, key=KEY):
        c = ConsoleClient(self.ser, key, None, timeout=10.0)
        c.sync()
        return c

    def stop(self):
        """SIGINT: the runner prints its STATS line; returns it as a dict."""
        self.ser.close()
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        os.close(self.master)
        os.close(self.slave)
        line = [x for x in out.splitlines() if x.startswith("STATS")]
        assert line, out
        return dict(kv.split("=") for kv in line[0].split()[1:])


@pytest.fixture
def unix_meter(mpy_dir):  # noqa: F811
    m = UnixMeter(mpy_dir)
    yield m
    if m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait()


def test_an_idle_console_poll_allocates_nothing(mpy_dir):  # noqa: F811
    r = run_script("console_heap.py", mpy_dir, heap="384k")
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "PASS", \
        r.stdout[-2000:] + r.stderr[-2000:]


def test_the_acceptance_test_passes_end_to_end_over_a_pty(unix_meter):
    c = unix_meter.client()
    out = []
    t0 = time.monotonic()
    steps = accept(c, {"meter_key": KEY, "load_w": 2500, "load_s": 20, "fail_ms": 1500,
                       "wait_s": 20.0}, out.append)
    report = "\n".join(out)
    print("\n" + report + "\n(%.1f s real)" % (time.monotonic() - t0))
    assert all(s.ok for s in steps), report
    assert out[-1] == "result: PASS (7/7 steps)"
    assert "sealed (verified)" in report
    stats = unix_meter.stop()
    print("runner:", stats)


def test_bad_input_and_a_flood_over_the_pty_change_nothing_and_metering_keeps_time(
        unix_meter):
    c = unix_meter.client()
    before = c.call("regs"), c.call("limiter"), c.call("audit"), c.call("lastgasp")
    ser = unix_meter.ser
    # an over-long line, binary garbage, an unknown command, a privileged one unsigned
    ser.write(b"x" * 400 + b"\n")
    ser.write(b"\x01\x02\x1b[A\x00" + b"\xff\xfe\n")
    ser.write(b"launch missiles\n")
    ser.write(b"fail 1000\n")
    replies = [c._readline(time.monotonic() + 10) for _ in range(4)]
    errors = [__import__("json").loads(x)["error"] for x in replies]
    assert errors == ["E_LINE_TOO_LONG", "E_BINARY", "E_UNKNOWN_COMMAND", "E_NOT_BENCH"]
    # a flood: 60 KB of lines and garbage as fast as the pty takes it
    t_end = time.monotonic() + 3.0
    sent = 0
    chunk = (b"regs\n" * 100 + bytes(range(256)) + b"\n") * 4
    fd = os.open(unix_meter.path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        while time.monotonic() < t_end:
            try:
                sent += os.write(fd, chunk)
            except BlockingIOError:
                time.sleep(0.01)
    finally:
        os.close(fd)
    time.sleep(1.0)  # the meter drains what is left (READ_PER_POLL bytes a poll)
    ser.reset_input_buffer()
    c.sync()
    stats_c = c.call("stats")
    assert stats_c["flooded"] > 0 and stats_c["errors"] > 0
    after = c.call("regs"), c.call("limiter"), c.call("audit"), c.call("lastgasp")
    # the registers only counted the household load: never backwards, nothing else moved
    assert after[0]["e0_j"] >= before[0]["e0_j"]
    assert after[1]["relay_commanded"] and after[1]["state"] == "closed"
    assert after[2]["logged"] == before[2]["logged"] + 1  # the refused fail only
    assert after[3]["failures"] == before[3]["failures"] == 0
    ident = c.call("id")
    clock = c.call("clock")
    stats = unix_meter.stop()
    print("\nflood: %d bytes sent; console: %s; runner: %s" % (sent, {
        k: stats_c[k] for k in ("lines", "flooded", "errors")}, stats))
    # metering on time: one step per virtual second of the run (virtual time runs 10x)
    assert abs(int(stats["steps"]) - int(stats["virtual_s"])) <= 1
    assert ident["ticks"] >= 1 and clock["valid"]


def test_privileged_commands_over_the_pty_need_bench_mode_and_a_fresh_response(unix_meter):
    from meter_console import ConsoleError, sign

    c = unix_meter.client()
    with pytest.raises(ConsoleError) as e:
        c.do("load 1000 5")  # signed, but bench mode is off
    assert e.value.args[0] == "E_NOT_BENCH"
    ch = c.call("challenge")
    line = "bench on mac=" + sign(KEY, b"MPYCON01", bytes.fromhex(ch["nonce"]), "bench on")
    assert c.call(line)["bench"] is True
    c.call("bench off")
    with pytest.raises(ConsoleError) as e:
        c.call(line)  # replayed
    assert e.value.args[0] == "E_NO_CHALLENGE"
    c.call("challenge")
    with pytest.raises(ConsoleError) as e:
        c.call(line)  # replayed under a newer challenge
    assert e.value.args[0] == "E_AUTH"
    wrong = ConsoleClient(unix_meter.ser, b"not-the-key-not-the-key-not-the-", None)
    wrong.json_mode = True
    for _ in range(2):
        with pytest.raises(ConsoleError) as e:
            wrong.do("bench on")
        assert e.value.args[0] == "E_AUTH"
    with pytest.raises(ConsoleError) as e:
        c.do("bench on")  # three failures: locked, even for the right key
    assert e.value.args[0] == "E_AUTH_LOCKED"
    audit = c.call("audit 8")
    assert [row[4] for row in audit["entry"][:3]] == ["con_bench"] * 3
    assert c.call("bench")["bench"] is False


def test_the_board_shell_runs_the_console_task_on_its_own_uart(mpy_dir, tmp_path):  # noqa: F811
    """firmware/main.py on the simulated ESP32 with a bench build's board definition: the
    console answers on UART 1, a signed failure wakes the power task, metering keeps time."""
    env = micropython_env(mpy_dir, fakes=True)
    env["FAKE_BOARD_FS"] = str(tmp_path)
    r = run_script("console_board.py", mpy_dir, env=env)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1] == "PASS", r.stdout[-3000:] + r.stderr[-3000:]
