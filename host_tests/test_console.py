"""The bench console under CPython: the sans-IO line protocol, bench mode, the challenge-
response, the injections, and the host tool (tools/meter_console.py) paired with the
firmware's console over an in-memory serial link on a virtual clock."""

import hashlib
import hmac
import json
import time

import pytest

from meter.assembly import build_meter
from meter.console import lines as ln
from meter.console.auth import FAIL_MAX, LOCK_MS, NONCE_TTL_MS, message
from meter.console.console import FLOOD_LINES, LINES_PER_POLL, OUT_MAX
from meter.console.reply import Reply
from meter.hal import BenchConsole
from meter.metering.registers import FWD, REV, LAG, LEAD
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.radio import MASTER, MemoryModule
from hosthal.uplink import FakeUplink
from meter_console import ConsoleClient, ConsoleError, accept, sign

KEY = b"console-test-meter-key-0123456789"
BENCH_KEY = b"bench-key-of-the-workshop-000001"
DAY0_S = 9_000 * 86_400


class Config:
    METER_ID = b"CONS0001"
    UNIT = 0x04  # 0.1 Wh counts
    CONSOLE = True
    LASTGASP = {}

    def __init__(self, **kw):
        self.__dict__.update(kw)


class CountingLoad(ConstantLoad):
    """A constant load that totals the forward joules it delivered (what the registers owe)."""

    delivered_j = 0

    def poll(self, s, now_ms):
        got = super().poll(s, now_ms)
        if got:
            self.delivered_j += s.e_fwd
        return got


class MemPort:
    """The meter's side of a serial line: `rx` holds what the host sent, `tx` what the
    meter wrote. limit: bytes write() takes per call (a slow line)."""

    def __init__(self, limit=None):
        self.rx = bytearray()
        self.tx = bytearray()
        self.limit = limit
        self.reads = 0

    def readinto(self, buf):
        self.reads += 1
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def write(self, buf):
        n = len(buf) if self.limit is None else min(self.limit, len(buf))
        self.tx += bytes(buf[:n])
        return n

    def any(self):
        return len(self.rx)


class Bench:
    """A meter with the console on a MemPort, on a virtual clock: tick() is 20 ms of the
    board's shell (power task, console task; a metering step every 1000 ms)."""

    def __init__(self, watts=0, bench_pin=0, config=None, flash=True, relay=True, radio=True,
                 key=KEY):
        self.clock = VirtualClock(wall_s=DAY0_S + 8 * 3600 + 30)
        self.load = CountingLoad(watts)
        self.pg = ScriptedPowerGood(1)
        self.uplink = FakeUplink()
        self.relay = FakeRelay() if relay else None
        self.port = MemPort()
        self.pin = ScriptedPowerGood(bench_pin)
        self.hal = HostHal(self.clock, self.load, power_good=self.pg, uplink=self.uplink,
                           relay=self.relay, flash=NorFlash(64) if flash else None,
                           console=BenchConsole(self.port, self.pin, BENCH_KEY))
        if radio:
            self.hal.radio = MemoryModule()
            self.hal.broute_key = MASTER
        self.meter = build_meter(self.hal, config or Config(), key=key)
        self.meter.boot()
        self.console = self.meter.console
        self._ms = 0
        self.step_max_s = 0.0

    def tick(self, ms=20):
        m = self.meter
        m.power_poll()
        m.console_poll()
        m.serve()
        self.clock.advance(ms)
        self._ms += ms
        if self._ms >= 1000:
            self._ms -= 1000
            t = time.perf_counter()
            m.step()
            m.idle()
            self.step_max_s = max(self.step_max_s, time.perf_counter() - t)

    def run(self, ms):
        for _ in range(max(1, ms // 20)):
            self.tick()

    def send(self, text):
        self.port.rx += text.encode() if isinstance(text, str) else text

    def lines(self):
        out = self.port.tx.decode().splitlines()
        self.port.tx.clear()
        return out

    def ask(self, line, ticks=400):
        """Send one line, run the shell until its reply is out, return the reply lines."""
        self.send(line + "\n")
        for _ in range(ticks):
            self.tick()
            t = self.port.tx
            if self.console._pending is None and not self.port.rx and t.endswith(b"\n") and (
                    t.startswith(b"{") or t.endswith(b"OK\n") or b"ERROR" in t):
                break
        return self.lines()

    def ask_json(self, line):
        out = [json.loads(x) for x in self.ask(line) if x.startswith("{")]
        assert len(out) == 1, out
        return out[0]

    def signed(self, line, key=KEY):
        """`line` with the mac= of a fresh challenge (the reply in either output mode)."""
        out = self.ask("challenge")
        if out[0].startswith("{"):
            nonce = json.loads(out[0])["nonce"]
        else:
            nonce = [x.split()[1] for x in out if x.startswith("nonce ")][0]
        return line + " mac=" + sign(key, b"CONS0001", bytes.fromhex(nonce), line)

    def state(self):
        """What nothing but an authentic privileged command may change."""
        m = self.meter
        audit = m.command_log
        return (tuple(m.regs.count), tuple(m.regs.total_joules(r) for r in (FWD, REV, LAG, LEAD)),
                self.relay.commanded() if self.relay else None, audit.seq if audit else None,
                self.meter.lastgasp.failures, self.console.bench)


class LinkSerial:
    """pyserial's side of the line for the host tool: write() feeds the meter, readline()
    runs the meter's shell (virtual time) until a line is there."""

    def __init__(self, bench):
        self.bench = bench
        self._buf = bytearray()

    def write(self, data):
        self.bench.send(bytes(data))
        return len(data)

    def readline(self):
        b = self.bench
        for _ in range(200):
            self._buf += b.port.tx
            b.port.tx.clear()
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            b.tick()
        return b""

    def reset_input_buffer(self):
        self._buf.clear()
        self.bench.port.tx.clear()


def tool(bench, key=KEY, bench_key=None):
    c = ConsoleClient(LinkSerial(bench), key, bench_key, timeout=5.0)
    c.pause = lambda s: bench.run(int(s * 20_000))  # the tool's waits pass in virtual time
    c.sync()
    return c


# ---- the sans-IO line protocol ------------------------------------------------------------

def feed_all(reader, data, step=None):
    """Lines (status, text) LineReader gives for data, fed whole or `step` bytes at a time."""
    out = []
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        i = 0
        while i < len(chunk):
            j = reader.feed(chunk, i, len(chunk))
            if j == ln.NEED_MORE:
                break
            out.append((reader.status, bytes(reader.buf[:reader.n]).decode()))
            reader.reset()
            i = j
    return out


def test_lines_are_the_same_fed_whole_or_one_byte_at_a_time():
    data = b"id\r\nregs\n\nring 5\nhelp\n"
    whole = feed_all(ln.LineReader(), data)
    assert whole == feed_all(ln.LineReader(), data, step=1) == feed_all(ln.LineReader(), data, 3)
    assert whole == [(ln.OK, "id"), (ln.OK, "regs"), (ln.OK, ""), (ln.OK, "ring 5"),
                     (ln.OK, "help")]


def test_a_line_over_the_limit_is_discarded_whole_and_the_next_one_is_clean():
    data = b"x" * (ln.LINE_MAX + 1) + b"\nid\n" + b"y" * ln.LINE_MAX + b"\n"
    got = feed_all(ln.LineReader(), data, step=7)
    assert [s for s, _ in got] == [ln.TOO_LONG, ln.OK, ln.OK]
    assert got[1][1] == "id" and len(got[2][1]) == ln.LINE_MAX


def test_binary_bytes_spoil_only_their_own_line():
    got = feed_all(ln.LineReader(), b"re\x00gs\nid\n\xff\xfe\x03\nclock\n")
    assert got == [(ln.BINARY, "re"), (ln.OK, "id"), (ln.BINARY, ""), (ln.OK, "clock")]


def test_backspace_edits_the_line_as_typed():
    assert feed_all(ln.LineReader(), b"regz\x08s\n\x7f\x7fid\n") == [(ln.OK, "regs"),
                                                                    (ln.OK, "id")]


def test_replies_render_for_a_person_and_as_one_ordered_json_line():
    r = Reply("ring").add("newest", 5).add("valid", True).add("time", None)
    r.rows("min", [[5, 100, 0], [4, 90, 0]])
    assert r.human() == "newest 5\nvalid yes\ntime -\nmin 5 100 0\nmin 4 90 0\nOK\n"
    line = r.json()
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line)
    assert list(obj) == ["ok", "cmd", "newest", "valid", "time", "min"]
    assert obj["min"] == [[5, 100, 0], [4, 90, 0]] and obj["ok"] is True
    bad = Reply("x").fail("E_ARGS", 'quote " and \\ and \x01')
    assert json.loads(bad.json())["detail"] == 'quote " and \\ and \x01'
    assert bad.human() == 'ERROR E_ARGS quote " and \\ and \x01\n'


def test_the_signed_message_is_the_documented_one():
    nonce = bytes(range(16))
    want = hmac.new(KEY, b"meter-console:CONS0001:" + nonce + b":fail 1500",
                    hashlib.sha256).hexdigest()
    assert sign(KEY, b"CONS0001", nonce, "fail   1500") == want
    assert message(b"CONS0001", nonce, "fail 1500") == b"meter-console:CONS0001:" + nonce + \
        b":fail 1500"


# ---- the console on a meter ---------------------------------------------------------------

def test_production_config_builds_no_console_and_no_injection_wrapper():
    b = Bench(config=Config(CONSOLE=False))
    assert b.meter.console is None
    assert b.meter.power_good is b.pg and b.meter.metrology is b.load
    assert b.meter.console_poll() == 0


def test_read_only_commands_answer_for_a_person_and_in_json():
    b = Bench(watts=1200)
    b.run(3000)
    out = b.ask("id")
    assert out == ["meter_id CONS0001", "firmware 1", "durable yes", "safe_mode no",
                   out[4], "problems", "OK"]
    regs = b.ask_json("json on") and b.ask_json("regs")
    assert regs["e0"] == b.meter.regs.count[FWD] and regs["unit"] == 0x04
    assert regs["e0_j"] == b.meter.regs.total_joules(FWD) > 0
    inst = b.ask_json("inst")
    assert inst["p_w"] == 1200 and inst["samples"] >= 2
    for cmd in ("clock", "ring 3", "intervals", "events 5", "audit", "limiter", "drillreport",
                "lastgasp", "journal", "heap", "broute", "aroute", "bench", "stats", "help"):
        r = [json.loads(x) for x in b.ask(cmd)]
        assert len(r) == 1 and r[0]["cmd"] == cmd.split()[0], (cmd, r)
    helps = {row[0]: row[1] for row in b.ask_json("help")["command"]}
    assert helps["regs"] == "read" and helps["bench on"] == "signed"
    assert helps["fail"] == helps["load"] == helps["relay"] == "bench"


def test_bad_input_gets_one_clear_error_line_each_and_changes_nothing():
    b = Bench(watts=500)
    b.run(2000)
    before = b.state()
    b.send(b"z" * 500 + b"\n")
    b.run(200)
    assert b.lines() == ["ERROR E_LINE_TOO_LONG line over %d bytes discarded" % ln.LINE_MAX]
    b.send(b"\x00\x01\xfe garbage \xff\n")
    b.run(100)
    assert b.lines() == ["ERROR E_BINARY bytes outside printable ASCII: line discarded"]
    assert b.ask("frobnicate 3") == ["ERROR E_UNKNOWN_COMMAND frobnicate (try help)"]
    assert b.ask("ring 0") == ["ERROR E_ARGS ring [1..60]"]
    assert b.ask("regs mac=" + "0" * 64) == ["ERROR E_ARGS mac= belongs to privileged "
                                             "commands only"]
    stats = b.ask_json("json on") and b.ask_json("stats")
    codes = dict(stats["error_codes"])
    assert codes == {"E_LINE_TOO_LONG": 1, "E_BINARY": 1, "E_UNKNOWN_COMMAND": 1, "E_ARGS": 2}
    assert b.state()[2:] == before[2:]  # relay, audit, outages, bench: untouched


def test_a_flood_is_cut_with_one_error_line_per_window_and_metering_stays_on_time():
    b = Bench(watts=800)
    b.run(2000)
    relay, audit = b.relay.commanded(), b.meter.command_log.seq
    steps0 = b.meter.ticks
    missed0 = b.meter.capture.missed
    b.send(b"regs\n" * 2000 + bytes(range(256)) * 40 + b"\n" * 300)
    for _ in range(200):  # 4 s of the shell while the flood drains
        b.tick()
    out = b.lines()
    floods = [x for x in out if x.startswith("ERROR E_FLOOD")]
    assert 1 <= len(floods) <= 5  # one per 1 s window at most
    assert sum(1 for x in out if x == "OK") <= FLOOD_LINES * 5
    assert b.console.flooded >= 1000  # at most FLOOD_LINES a second are run
    assert b.meter.ticks - steps0 == 4  # every metering second ran
    assert b.meter.capture.missed == missed0
    assert (b.relay.commanded(), b.meter.command_log.seq) == (relay, audit)
    print("longest metering step while flooded: %.2f ms (CPython)" % (b.step_max_s * 1000))


def test_one_poll_does_bounded_work():
    b = Bench()
    b.send(b"id\n" * 50)
    n = b.meter.console_poll()
    assert n == LINES_PER_POLL and b.console.commands == LINES_PER_POLL


def test_a_reader_that_does_not_read_loses_replies_but_stalls_neither_input_nor_meter():
    b = Bench(watts=700)
    b.port.limit = 0  # nobody reads the line
    for _ in range(40):
        b.send("help\n")
        b.run(100)
    assert b.console._pending is not None and len(b.console._pending) <= OUT_MAX
    assert b.console.commands == 40 and not b.port.rx  # every line was still taken
    assert b.console.out_dropped >= 30
    assert b.meter.ticks >= 4
    b.port.limit = 64  # the reader is back: the backlog drains, new lines are answered
    b.run(5_000)
    assert b.console._pending is None
    b.port.tx.clear()
    assert b.ask("id")[-1] == "OK"


def test_privileged_commands_are_refused_outside_bench_mode_and_audited():
    b = Bench()
    before = b.state()
    out = b.ask(b.signed("fail 500"))
    assert out == ["ERROR E_NOT_BENCH bench mode is off: bench pin at boot or a signed bench on"]
    assert b.ask("load 1000 10") == out
    assert b.pg.value() == 1 and b.meter.power_good.value() == 1
    assert b.state()[:3] == before[:3] and b.meter.lastgasp.failures == before[4]
    entry = b.meter.command_log.get(0)
    assert entry[4] == 0x42 and entry[5] == 13  # con_load, E_STATE


def test_bench_on_needs_a_valid_response_to_a_fresh_challenge():
    b = Bench()
    assert b.ask("bench on") == ["ERROR E_AUTH_REQUIRED get a challenge, end the line with "
                                 "mac=<hmac>"]
    assert b.ask("bench on mac=" + "ab" * 32) == ["ERROR E_NO_CHALLENGE challenge-response "
                                                  "refused"]
    line = b.signed("bench on")
    out = b.ask(line)
    assert out[0] == "bench yes" and out[1] == "entered_by signed" and out[-1] == "OK"
    assert "key meter" in out
    b.ask("bench off")
    # the same response again: its nonce is gone
    assert b.ask(line) == ["ERROR E_NO_CHALLENGE challenge-response refused"]
    # and under a new challenge it is wrong
    b.ask("challenge")
    assert b.ask(line) == ["ERROR E_AUTH challenge-response refused"]
    assert b.console.bench == 0
    # the bench key signs too
    out = b.ask(b.signed("bench on", BENCH_KEY))
    assert "key bench" in out and b.console.bench == 1


def test_failed_authentication_is_rate_limited_and_leaves_a_tamper_event():
    from meter import events as ev

    b = Bench()
    for _ in range(FAIL_MAX):
        b.ask("challenge")
        assert b.ask("bench on mac=" + "00" * 32)[0].startswith("ERROR E_AUTH ")
    assert b.ask("challenge")[0].startswith("ERROR E_AUTH_LOCKED")
    good = b.signed  # a correct response is refused too while locked
    assert b.ask("bench on mac=" + "00" * 32)[0].startswith("ERROR E_AUTH_LOCKED")
    assert b.console.bench == 0
    assert b.meter.events.count(ev.TAMPER_AUTH) == FAIL_MAX
    b.run(LOCK_MS + 1000)
    assert "bench yes" in b.ask(good("bench on"))


def test_an_old_challenge_expires():
    b = Bench()
    line = b.signed("bench on")
    b.run(NONCE_TTL_MS + 1000)
    assert b.ask(line) == ["ERROR E_CHALLENGE_EXPIRED challenge-response refused"]


def test_bench_mode_ends_on_its_own_and_stops_every_injection():
    b = Bench(config=Config(CONSOLE_BENCH_S=60))
    b.ask(b.signed("bench on"))
    b.ask(b.signed("load 2000 600"))
    assert b.console.load.w == 2000
    b.run(61_000)
    assert b.console.bench == 0 and b.console.load.w == 0
    assert b.ask(b.signed("load 2000 10"))[0].startswith("ERROR E_NOT_BENCH")
    names = [b.meter.command_log.get(k)[4] for k in range(4)]
    assert names[:2] == [0x42, 0x40]  # the refused load, bench left (arg 0)
    assert b.meter.command_log.get(1)[6] == 0


def test_a_console_drill_ends_with_bench_mode_and_a_head_end_drill_does_not():
    b = Bench(watts=500, config=Config(CONSOLE_BENCH_S=60))
    b.ask(b.signed("bench on"))
    assert b.ask(b.signed("drill 20 3600"))[-1] == "OK"
    b.run(2000)
    lim = b.meter.limiter
    assert lim.drill.running and lim.demand_a == 20
    b.ask("bench off")
    b.run(2000)
    assert lim.demand_a == 0 and not lim.drill.running
    b.ask(b.signed("bench on"))
    assert b.ask(b.signed("drill 20 3600"))[-1] == "OK"
    lim.drill_now(30, 3600, b.meter.now.read(b.clock))  # the head-end replaces it
    b.run(61_000)  # bench mode times out: the head-end's drill stays
    assert b.console.bench == 0 and lim.demand_a == 30 and lim.drill.running


def test_the_bench_pin_held_at_boot_enters_bench_mode_and_is_audited():
    b = Bench(bench_pin=1)
    assert b.console.bench == 2
    e = b.meter.command_log.get(0)
    assert (e[4], e[5], e[6]) == (0x40, 0, 2)
    out = b.ask(b.signed("fail 100"))
    assert out[-1] == "OK"


def test_an_injected_power_failure_runs_the_last_gasp_machine_as_a_real_one():
    from headend_alarms import decode_outage

    b = Bench(watts=1000, bench_pin=1)
    b.run(3000)
    e0 = b.meter.regs.count[FWD]
    b.ask(b.signed("fail 1500"))
    assert b.meter.power_good.value() == 0 and b.pg.value() == 1
    b.run(2500)
    assert b.meter.power_good.value() == 1
    lg = b.meter.lastgasp
    assert lg.failures == 1 and lg.state == 0 and not lg.notice_pending
    msgs = [decode_outage(p, KEY) for _, p in b.uplink.sent]
    assert msgs[0]["type"] == "last_gasp" and msgs[-1]["type"] == "restored"
    assert msgs[0]["e0"] == msgs[-1]["e0"] >= e0  # frozen across the outage
    assert msgs[-1]["duration_s"] in (1, 2)


def test_the_console_never_writes_a_register_only_the_injected_load_moves_them():
    b = Bench(watts=0, bench_pin=1)
    b.run(2000)
    c = b.console
    assert b.meter.regs.total_joules(FWD) == 0
    out = b.ask(b.signed("provision CONS0002 " + "11" * 32))  # it has a key: refused
    assert out[-1].startswith("ERROR E_PROVISIONED") and b.hal.provisioned is None
    for cmd in ("id", "clock", "regs", "inst", "ring", "intervals", "events", "audit",
                "limiter", "drillreport", "lastgasp", "journal", "journal audit", "heap",
                "broute", "broute probe", "bench", "stats", "help", "challenge"):
        assert b.ask(cmd)[-1] == "OK", cmd
    assert b.ask("aroute") == ["ERROR E_UNSUPPORTED no A-route (no link to a broker, or no "
                               "key)"]
    for cmd in ("relay test", "drill 20 30", "setclock 2024-08-22T08:00:00 force",
                "fail 300", "load 1234 7"):
        assert b.ask(b.signed(cmd))[-1] == "OK", cmd
        b.run(1500)
    b.run(10_000)
    assert c.relay_result == "pass"
    g = b.meter.regs
    assert c.load.injected_j == 1234 * 7
    assert g.total_joules(FWD) == c.load.injected_j  # to the joule
    assert g.total_joules(REV) == g.total_joules(LAG) == g.total_joules(LEAD) == 0
    out = b.ask(b.signed("provision CONS0003 " + "22" * 32, BENCH_KEY))
    assert out[-1].startswith("ERROR E_PROVISIONED") and b.hal.provisioned is None


def test_an_injected_power_failure_costs_no_real_energy():
    """The real supply stays on during an injected failure: the energy the front end
    measures while the Last Gasp machine holds metering frozen is banked and counted after
    it, to the joule; the alarm and the notice still carry the same E0."""
    from headend_alarms import decode_outage

    b = Bench(watts=2000, bench_pin=1)
    b.run(3000)
    b.ask(b.signed("fail 10000"))
    b.run(2000)
    assert b.meter.metering.frozen  # the Last Gasp machine holds
    b.run(14_000)
    assert not b.meter.metering.frozen and b.meter.lastgasp.failures == 1
    assert b.console.load.banked_j >= 2000 * 9
    assert b.meter.regs.total_joules(FWD) == b.load.delivered_j >= 2000 * 17
    assert b.console.load.bank == [0, 0, 0, 0]
    msgs = [decode_outage(p, KEY) for _, p in b.uplink.sent]
    assert msgs[0]["type"] == "last_gasp" and msgs[-1]["type"] == "restored"
    assert msgs[0]["e0"] == msgs[-1]["e0"]
    assert sum(b.meter.metering.rejected) == 0


def test_a_short_injected_failure_costs_no_real_energy_either():
    """A failure shorter than a metering second: the Last Gasp machine still holds metering
    at the next step, after the failure ended; that step's sample is banked all the same."""
    b = Bench(watts=3000, bench_pin=1)
    b.run(3000)
    for _ in range(3):
        line = b.signed("fail 900")
        while b._ms:  # a metering step just ran: the next one is 1000 ms away
            b.tick()
        b.send(line + "\n")
        b.tick()  # the failure starts; it ends 100 ms before the next step ...
        assert b.console.power.low
        b.run(1000)  # ... which finds metering still held (restore_ms 200)
        b.run(5000)
    assert b.meter.lastgasp.failures == 3 and b.console.load.banked_j >= 3 * 3000
    assert b.meter.regs.total_joules(FWD) == b.load.delivered_j
    assert not b.console.power.caused and not b.console.load.banking


def test_an_injected_load_never_gets_a_real_sample_rejected():
    """Real 2500 W on a 3000 W meter plus an injected 1000 W would fail the plausibility
    check: the sample is counted without the load (clipped), never rejected whole."""
    b = Bench(watts=2500, bench_pin=1, config=Config(MAX_POWER_W=3000))
    b.run(3000)
    assert b.ask(b.signed("load 1000 5"))[-1] == "OK"
    b.run(8000)
    ld = b.console.load
    assert ld.clipped >= 4 and sum(b.meter.metering.rejected) == 0
    assert b.meter.regs.total_joules(FWD) == b.load.delivered_j + ld.injected_j
    b.load.watts = 1500  # room for the load again: it is added
    assert b.ask(b.signed("load 1000 5"))[-1] == "OK"
    b.run(8000)
    assert ld.injected_j >= 1000 * 4 and sum(b.meter.metering.rejected) == 0
    assert b.meter.regs.total_joules(FWD) == b.load.delivered_j + ld.injected_j


def test_provision_keys_a_blank_meter_whose_next_boot_is_clean():
    """A meter without a per-meter key (RAM only: nothing sealed yet) takes an id and a key
    up to 64 bytes, signed with the bench key; its next boot on the same flash mounts a
    clean journal sealed with the new key. A keyed meter, even one whose registers are
    zero, is refused: its journal is sealed with its key, a new one would make every record
    tamper evidence (and a bench key holder could re-key a meter in service)."""
    b = Bench(watts=0, bench_pin=1, key=None)
    assert b.meter.store is None and b.console.auth.key_names() == ["bench"]
    key = bytes(range(64))
    line = b.signed("provision CONS0002 " + key.hex(), BENCH_KEY)
    assert len(line) > 160
    out = b.ask(line)
    assert out[-1] == "OK" and b.hal.provisioned == (b"CONS0002", key), out
    hal = HostHal(b.clock, b.load, power_good=b.pg, uplink=b.uplink, relay=b.relay,
                  flash=b.hal.flash, meter_id=b"CONS0002", key=key)
    m = build_meter(hal, Config())
    rep = m.boot()
    assert m.store is not None and rep.tamper == 0 and rep.corrupt == 0
    assert not m.store.tamper_pending() and m.store.registers_valid
    keyed = Bench(watts=0, bench_pin=1)  # a key, registers all zero: refused
    assert not any(keyed.meter.regs.count)
    for k in (KEY, BENCH_KEY):
        out = keyed.ask(keyed.signed("provision CONS0009 " + "33" * 32, k))
        assert out[-1].startswith("ERROR E_PROVISIONED"), out
    assert keyed.hal.provisioned is None
    assert keyed.meter.command_log.get(0)[4] == 0x46  # audited: con_provision, refused


def test_a_relay_test_checks_the_feedback_contact():
    b = Bench(bench_pin=1)
    b.relay.stuck = True  # welded contacts: the feedback stays closed
    b.ask(b.signed("relay test"))
    b.run(2000)
    assert b.console.relay_result == "fail" and b.console.relay_open_sensed is True
    from meter import events as ev
    assert b.meter.events.newest(ev.BREAKER_OPEN)[4] == 7  # logged with its reason
    b2 = Bench(bench_pin=1)
    assert b2.ask(b2.signed("relay open"))[-1] == "OK" and not b2.relay.commanded()
    assert b2.ask(b2.signed("relay test"))[-1].startswith("ERROR E_STATE")
    assert b2.ask(b2.signed("relay close"))[-1] == "OK" and b2.relay.commanded()


def test_refused_privileged_commands_change_nothing():
    b = Bench(watts=300, bench_pin=1)
    b.run(2000)
    before = b.state()
    for cmd in ("fail 0", "fail 99999999", "load 0 5", "load 100", "load 99999 5",
                "relay wiggle", "drill 17 30", "setclock yesterday",
                "setclock 2031-01-01T00:00:00", "provision SHORT 00", "bench on now"):
        out = b.ask(b.signed(cmd))
        assert out[-1].startswith("ERROR E_"), (cmd, out)
    b.run(3000)
    after = b.state()
    assert after[2] == before[2] and after[4:] == before[4:]
    assert b.console.load.injected_j == 0 and b.meter.clock.wall_valid()


# ---- the host tool against the console ----------------------------------------------------

def test_the_tool_signs_privileged_lines_and_runs_the_acceptance_test():
    b = Bench(watts=600)
    b.run(5000)
    c = tool(b)
    assert c.needs_signing("fail 100") and c.needs_signing("bench on")
    assert not c.needs_signing("regs") and not c.needs_signing("bench off")
    out = []
    steps = accept(c, {"meter_key": KEY, "load_w": 1500, "load_s": 20, "fail_ms": 1200,
                       "wait_s": 5.0}, out.append)
    report = "\n".join(out)
    assert all(s.ok for s in steps), report
    assert [s.name for s in steps] == ["identity and clock", "registers under load",
                                       "1-minute capture", "power failure", "relay test",
                                       "journal audit", "B-route answer"]
    assert report.endswith("result: PASS (7/7 steps)")
    assert b.console.bench == 0  # the test left bench mode


def test_journal_audits_are_rate_limited_and_the_acceptance_test_waits_for_its_turn():
    """`journal audit` re-verifies every record while the meter waits: anyone may ask, so
    one per 30 s (E_BUSY between), and the acceptance test's audit step waits its turn."""
    b = Bench(watts=600)
    b.run(3000)
    assert b.ask("journal audit")[-1] == "OK"
    assert b.ask("journal audit")[-1].startswith("ERROR E_BUSY one journal audit per 30 s")
    assert b.ask("journal")[-1] == "OK"  # the health report without the audit: any time
    b.run(31_000)
    assert b.ask("journal audit")[-1] == "OK"
    from meter_console import step_journal

    ok, detail = step_journal(tool(b), {"wait_s": 5.0})
    assert ok and "records verified" in detail, detail


def test_the_acceptance_test_reports_a_failing_step():
    b = Bench(watts=600, relay=True)
    b.relay.stuck = True
    c = tool(b)
    out = []
    steps = accept(c, {"meter_key": KEY, "load_w": 1000, "load_s": 5, "wait_s": 5.0},
                   out.append)
    bad = [s for s in steps if not s.ok]
    assert [s.name for s in bad] == ["relay test"], out
    assert out[-1] == "result: FAIL (6/7 steps)"


def test_the_interactive_history_never_keeps_a_provisioned_key(tmp_path, monkeypatch):
    """History is a plain file in the technician's home: a provision line (a key in hex)
    typed at the prompt is not written to it; everything else is."""
    import readline

    import meter_console

    b = Bench(watts=0)
    c = tool(b)
    hist = tmp_path / "history"
    monkeypatch.setattr(meter_console, "HISTORY", str(hist))
    readline.clear_history()
    typed = iter(["regs", "provision CONS0002 " + "5a" * 32, "sign provision X 00", "id"])

    def fake_input(prompt):
        try:
            line = next(typed)
        except StopIteration:
            raise EOFError from None
        readline.add_history(line)  # what input() does with readline loaded
        return line

    monkeypatch.setattr("builtins.input", fake_input)
    args = type("Args", (), {"port": "mem", "json": False})()
    meter_console.interactive(c, args)
    text = hist.read_text()
    assert "regs" in text and "id" in text
    assert "5a5a" not in text and "provision" not in text


def test_without_a_key_the_tool_says_so():
    b = Bench()
    c = tool(b, key=None)
    with pytest.raises(ConsoleError) as e:
        c.do("fail 100")
    assert e.value.args[0] == "E_NO_KEY"
