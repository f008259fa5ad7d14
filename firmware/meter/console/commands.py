# The bench console's commands: read-only reports for anyone at the bench, and the privileged
# bench actions (bench mode + an HMAC challenge-response, each one audited).
#
# A handler is fn(console, args, now, reply): it reads the meter through console.meter and
# fills the reply (meter.console.reply). A privileged handler returns (status, arg) for the
# audit entry (meter.control.status codes; arg the entry's u16 argument) and, on refusal,
# fails the reply with its E_ code; it changes nothing when it refuses. The table
# (COMMANDS: name -> (handler, flags, usage, summary)) is what `help` lists. No handler
# writes a register: the metrology load goes through the InjectedLoad wrapper, i.e. through
# the front end's samples, the plausibility check and the registers' own accounting.

from micropython import const
import gc

from meter import caltime
from meter import events as ev
from meter.control import status
from meter.errors import SettingError, code as error_code
from meter.metering.registers import FWD, REV, LAG, LEAD
from meter.ticks import elapsed_ms

READ = const(0)
PRIV = const(1)  # needs authentication (a challenge-response) and is audited
BENCH = const(2)  # needs bench mode too

# audit log codes of console actions (meter.control.audit `code`; the remote commands of
# meter.control.command use 0x01..0x0D)
AUDIT_BENCH = const(0x40)  # arg: 1 entered (signed), 2 entered (bench pin at boot), 0 left
AUDIT_FAIL = const(0x41)  # arg: failure length, 10 ms units
AUDIT_LOAD = const(0x42)  # arg: watts
AUDIT_RELAY = const(0x43)  # arg: 1 test, 2 open, 3 close
AUDIT_DRILL = const(0x44)  # arg: limit A
AUDIT_CLOCK = const(0x45)  # arg: 1 set, 2 forced
AUDIT_PROVISION = const(0x46)  # arg: key length
AUDIT_NAMES = {AUDIT_BENCH: "con_bench", AUDIT_FAIL: "con_fail", AUDIT_LOAD: "con_load",
               AUDIT_RELAY: "con_relay", AUDIT_DRILL: "con_drill", AUDIT_CLOCK: "con_clock",
               AUDIT_PROVISION: "con_provision"}

FAIL_MIN_MS = const(1)
FAIL_MAX_MS = const(600_000)  # 10 minutes: a long power failure (LONG_POWER_FAIL) fits
LOAD_MAX_S = const(3600)
AUDIT_GAP_MS = const(30_000)  # `journal audit` blocks the shell while it runs: one per 30 s
R_CONSOLE = const(7)  # BREAKER_OPEN/CLOSE reason: a bench relay test (limiter R_* are 1..6)
_ECHONET_GET_E0 = b"\x10\x81\x00\x01\x05\xff\x01\x02\x88\x01\x62\x01\xe0\x00"


def _int(s, lo, hi):
    """int(s) within lo..hi, else None."""
    try:
        v = int(s)
    except ValueError:
        return None
    return v if lo <= v <= hi else None


def iso(minute, second=0):
    y, mo, d, h, mi = caltime.ymdhm(minute)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, second)


def parse_iso(text):
    """'YYYY-MM-DDTHH:MM[:SS]' -> (minute, second) or None."""
    try:
        date, tod = text.split("T")
        y, mo, d = [int(x) for x in date.split("-")]
        parts = [int(x) for x in tod.split(":")]
    except ValueError:
        return None
    if len(parts) == 2:
        parts.append(0)
    if len(parts) != 3 or not 0 <= parts[2] <= 59:
        return None
    m = caltime.to_minute(y, mo, d, parts[0], parts[1])
    return None if m < 0 else (m, parts[2])


def kwh(regs, count):
    """A register count as a kWh decimal string with 4 decimals (0.1 Wh)."""
    dwh = count * regs.count_dwh()
    return "%d.%04d" % (dwh // 10_000, dwh % 10_000)


# ---- read-only ----------------------------------------------------------------------------

def c_help(c, args, now, r):
    rows = []
    for name in sorted(COMMANDS):
        fn, flags, usage, summary = COMMANDS[name]
        kind = "bench" if flags & BENCH else ("signed" if flags & PRIV else "read")
        rows.append([name, kind, usage, summary])
    r.rows("command", rows)


def c_id(c, args, now, r):
    from meter.app import FIRMWARE_VERSION

    m = c.meter
    r.add("meter_id", m.meter_id.decode()).add("firmware", FIRMWARE_VERSION)
    r.add("durable", m.durable).add("safe_mode", m.safe_mode).add("ticks", m.ticks)
    r.add("problems", list(m.hal.problems))


def c_clock(c, args, now, r):
    r.add("valid", now.valid).add("minute", now.minute).add("second", now.second)
    r.add("time", iso(now.minute, now.second) if now.valid else None).add("ms", now.ms)


def c_regs(c, args, now, r):
    m = c.meter
    g = m.regs
    r.add("unit", g.unit).add("coefficient", g.coefficient).add("count_dwh", g.count_dwh())
    for name, reg in (("e0", FWD), ("e3", REV), ("lag", LAG), ("lead", LEAD)):
        r.add(name, g.count[reg])
    r.add("e0_kwh", kwh(g, g.count[FWD])).add("e3_kwh", kwh(g, g.count[REV]))
    r.add("e0_j", g.total_joules(FWD)).add("e3_j", g.total_joules(REV))
    r.add("wraps", list(g.wraps))
    r.add("valid", m.store.registers_valid if m.store is not None else True)


def c_inst(c, args, now, r):
    met = c.meter.metering
    r.add("p_w", met.p_w).add("i_ma", met.i_ma).add("i2_ma", met.i2_ma).add("v_dv", met.v_dv)
    r.add("samples", met.samples).add("rejected", sum(met.rejected))
    r.add("silent_s", c.meter.silent).add("frozen", met.frozen)


def c_ring(c, args, now, r):
    """The 1-minute ring, newest first: [minute, fwd, rev]."""
    n = _int(args[0], 1, 60) if args else 60
    if n is None:
        return r.fail("E_ARGS", "ring [1..60]")
    ring = c.meter.capture.ring
    newest = ring.latest()
    rows = []
    m = newest
    while newest >= 0 and len(rows) < n and m > newest - 60:
        s = ring.slot(m)
        rows.append([m, ring.fwd[s], ring.rev[s]] if s >= 0 else [m, None, None])
        m -= 1
    r.add("newest", newest).add("high_water", c.meter.capture.high_water)
    r.add("missed", c.meter.capture.missed).rows("min", rows)


def c_intervals(c, args, now, r):
    """The newest 5-minute boundary's values and the 30-minute value ending at the newest
    half hour, in register counts (None: missing)."""
    cap = c.meter.capture
    five = cap.five
    m5 = five.latest()
    s5 = five.slot(m5)
    r.add("five_minute", m5)
    if s5 >= 0:
        r.add("five_fwd", five.fwd[s5]).add("five_rev", five.rev[s5])
        e = five.energy(m5, 5)
        r.add("five_energy", e if e >= 0 else None)
        v = five.cols[4][s5] if five.ncols > 4 else -1
        r.add("five_volt_dv", v if v >= 0 else None)
    m30 = m5 - m5 % 30 if m5 >= 0 else -1
    e30 = five.energy(m30, 30) if m30 >= 0 else -1
    r.add("half_minute", m30).add("half_energy", e30 if e30 >= 0 else None)
    half = cap.half
    h = half.latest()
    r.add("history_newest", h)
    if h >= 0:
        hs = half.slot(h)
        r.add("history_fwd", half.fwd[hs]).add("history_rev", half.rev[hs])


def c_events(c, args, now, r):
    n = _int(args[0], 1, 64) if args else 10
    if n is None:
        return r.fail("E_ARGS", "events [1..64]")
    log = c.meter.events
    rows = []
    for k in range(n):
        e = log.get(k)
        if e is None:
            break
        seq, code, minute, second, a, b = e
        rows.append([seq, ev.NAMES.get(code, str(code)), minute, second, a, b])
    r.add("logged", log.seq).rows("event", rows)


def c_audit(c, args, now, r):
    from meter.control.command import CMD_NAMES

    log = c.meter.command_log
    if log is None:
        return r.fail("E_UNSUPPORTED", "no command audit log (no relay)")
    n = _int(args[0], 1, 32) if args else 10
    if n is None:
        return r.fail("E_ARGS", "audit [1..32]")
    rows = []
    for k in range(n):
        e = log.get(k)
        if e is None:
            break
        seq, counter, minute, second, code, st, arg = e
        name = CMD_NAMES.get(code) or AUDIT_NAMES.get(code) or str(code)
        rows.append([seq, counter, minute, second, name, status.NAMES[st]
                     if st < len(status.NAMES) else str(st), arg])
    r.add("logged", log.seq).add("unsaved", log.unsaved).rows("entry", rows)


def c_limiter(c, args, now, r):
    from meter.control.limiter import STATE_NAMES
    from meter.control.reservations import STATE_NAMES as RES_NAMES, FREE

    lim = c.meter.limiter
    if lim is None:
        return r.fail("E_UNSUPPORTED", "no relay: no limiter")
    brk = lim.breaker
    r.add("state", STATE_NAMES[lim.state]).add("contract_a", lim.contract)
    r.add("active_a", lim.active_a).add("active_id", lim.active_id)
    r.add("fallback", lim.fallback).add("trips", lim.trips).add("recloses", lim.recloses)
    r.add("relay_commanded", brk.relay.commanded()).add("relay_sensed", brk.relay.sensed())
    r.add("fault", brk.fault).add("drill_running", lim.drill.running)
    t = lim.table
    rows = []
    for i in range(len(t.state)):
        if t.state[i] != FREE:
            rows.append([t.rid[i], t.start[i], t.end[i], t.limit[i], RES_NAMES[t.state[i]]])
    r.rows("reservation", rows)


def c_drill(c, args, now, r):
    lim = c.meter.limiter
    if lim is None:
        return r.fail("E_UNSUPPORTED", "no relay: no drill")
    d = lim.drill
    r.add("running", d.running).add("source", d.source).add("start", d.start_min)
    r.add("end", d.end_min).add("lowest_a", d.low_a).add("trips", d.trips)
    r.add("max_ma", d.max_ma).add("over_s", d.over_s).add("records", d.n)


def c_lastgasp(c, args, now, r):
    from meter.outage import lastgasp as lgm

    lg = c.meter.lastgasp
    if lg is None:
        return r.fail("E_UNSUPPORTED", "no Last Gasp (no key)")
    names = ("up", "pending", "holding", "down", "rebooted", "wait_clock")
    r.add("state", names[lg.state]).add("failures", lg.failures)
    r.add("long_failures", lg.long_failures).add("suppressed", lg.suppressed)
    r.add("dips", lg.dips).add("seq", lg.seq).add("budget_ms", lg.budget_ms)
    r.add("debounce_ms", lg.debounce_ms).add("last_sequence_ms", lg.last_sequence_ms)
    r.add("edge_to_alarm_ms", lg.edge_to_alarm_ms).add("notice_pending", lg.notice_pending)
    p = lg.platform
    r.add("commits_now", p.commits_now).add("commit_failures", p.commit_failures)
    r.add("power_good", c.meter.power_good.value() if c.meter.power_good is not None else None)
    r.add("alarm", bytes(lg.alarm.buf).hex()).add("notice", bytes(lg.notice.buf).hex())
    r.add("fast_ms", lgm.FAST_MS)


def c_journal(c, args, now, r):
    m = c.meter
    st = m.store
    if st is None:
        return r.fail("E_NO_STORAGE", "RAM only: no journal")
    if args and args[0] == "audit":
        # re-reads and re-seals every record: ~ms per record on a board, the meter's other
        # tasks wait meanwhile; anyone at the bench may ask, so at most one per AUDIT_GAP_MS
        if c.audit_ms is not None:
            el = elapsed_ms(now.ms, c.audit_ms)
            if 0 <= el < AUDIT_GAP_MS:
                return r.fail("E_BUSY", "one journal audit per %d s: retry in %d s" % (
                    AUDIT_GAP_MS // 1000, (AUDIT_GAP_MS - el + 999) // 1000))
        c.audit_ms = now.ms
        rep = m.audit()
        c.last_audit = rep
    elif args:
        return r.fail("E_ARGS", "journal [audit]")
    j = m.journal
    r.add("records", j.live_slots()).add("free_slots", j.free_slots())
    r.add("free_sectors", j.free_sectors()).add("capacity", j.capacity_slots())
    r.add("programs", j.programs).add("erases", j.erases).add("commits", st.commits)
    r.add("tamper_count", st.tamper_count).add("tamper_pending", st.tamper_pending())
    r.add("registers_valid", st.registers_valid)
    for label, rep in (("mount", m.mount_report), ("audit", c.last_audit)):
        if rep is None:
            r.add(label, None)
            continue
        r.add(label, [rep.records, rep.corrupt, rep.tamper, rep.damaged, rep.bad])
        r.add(label + "_ok", rep.ok())
    r.add("report_fields", ["records", "corrupt", "tamper", "damaged", "bad"])


def c_heap(c, args, now, r):
    m = c.meter
    try:
        r.add("free", gc.mem_free()).add("alloc", gc.mem_alloc())
    except AttributeError:  # CPython (host tests, the simulation): no MicroPython heap
        r.add("free", None).add("alloc", None)
    r.add("step_us", m.step_us).add("step_us_max", m.step_us_max)


def c_broute(c, args, now, r):
    from meter.broute import pump

    m = c.meter
    b = m.broute
    if b is None or m.echonet is None:
        return r.fail("E_UNSUPPORTED", "no B-route module slot")
    r.add("state", pump.STATE_NAMES[b.state]).add("link", b.link)
    r.add("module", list(b.module.identity()) if b.module is not None else None)
    r.add("rx", b.count[pump.RX]).add("tx", b.count[pump.TX])
    r.add("io_errors", b.count[pump.IO_ERRORS]).add("radios", m.radios)
    if args and args[0] == "probe":
        # one ECHONET Lite Get of E0 through the meter's own service (no radio needed)
        svc = m.echonet
        req = _ECHONET_GET_E0
        svc.rx[:len(req)] = req
        n = svc.handle(svc.rx, len(req), now)
        rep = bytes(svc.tx.buf[:n])
        r.add("request", req.hex()).add("reply", rep.hex())
        if n >= 18 and rep[10] == 0x72 and rep[12] == 0xE0 and rep[13] == 4:
            r.add("e0", int.from_bytes(rep[14:18], "big"))
        else:
            r.add("e0", None)
        r.add("registers_e0", m.regs.count[FWD])
    elif args:
        return r.fail("E_ARGS", "broute [probe]")


def c_aroute(c, args, now, r):
    a = c.meter.aroute
    if a is None:
        return r.fail("E_UNSUPPORTED", "no A-route (no link to a broker, or no key)")
    s = a.session
    names = ("wait", "opening", "connecting", "up", "closed")
    r.add("connected", a.connected()).add("session", names[s.state]
                                          if s.state < len(names) else str(s.state))
    r.add("connects", s.connects).add("attempts", s.attempts).add("failures", s.failures)
    r.add("drops", s.drops).add("last_error", s.last_error)


def c_bench(c, args, now, r):
    if not args:
        c.bench_report(now, r)
        return
    if args[0] == "off":
        c.leave_bench(now, 0)
        c.bench_report(now, r)
        return
    return r.fail("E_ARGS", "bench | bench off | bench on (signed)")


def c_stats(c, args, now, r):
    r.add("lines", c.reader.lines).add("rx_bytes", c.rx_bytes).add("commands", c.commands)
    r.add("errors", c.errors).add("flooded", c.flooded).add("out_dropped", c.out_dropped)
    r.add("auth_failures", c.auth.failures).add("auth_locked_out", c.auth.locked_out)
    r.add("challenges", c.auth.cid)
    r.add("error_codes", [[k, c.error_codes[k]] for k in sorted(c.error_codes)])


def c_json(c, args, now, r):
    if not args or args[0] not in ("on", "off"):
        return r.fail("E_ARGS", "json on|off")
    c.json = args[0] == "on"
    r.add("json", c.json)


def c_challenge(c, args, now, r):
    a = c.auth
    if not a.keys:
        return r.fail("E_NO_KEY", "no per-meter or bench key: privileged commands disabled")
    nonce = a.challenge(now)
    if nonce is None:
        return r.fail("E_AUTH_LOCKED", "too many failed authentications: retry in %d s"
                      % a.lock_left_s(now))
    r.add("cid", a.cid).add("nonce", nonce.hex()).add("meter_id", c.meter.meter_id.decode())
    r.add("keys", a.key_names())


# ---- privileged -------------------------------------------------------------------------

def p_bench(c, args, now, r):
    if args:
        r.fail("E_ARGS", "bench on")
        return status.E_MALFORMED, 0
    c.enter_bench(now, 1)
    c.bench_report(now, r)
    return status.OK, 1


def p_fail(c, args, now, r):
    ms = _int(args[0], FAIL_MIN_MS, FAIL_MAX_MS) if len(args) == 1 else None
    if ms is None:
        r.fail("E_ARGS", "fail <ms 1..%d>" % FAIL_MAX_MS)
        return status.E_RANGE, 0
    pg = c.power
    if pg is None or c.meter.lastgasp is None:
        r.fail("E_UNSUPPORTED", "no power-good input or no Last Gasp on this meter")
        return status.E_UNSUPPORTED, 0
    if pg.low or c.meter.lastgasp.state != 0:
        r.fail("E_BUSY", "a power failure is still in progress")
        return status.E_STATE, 0
    c.start_failure(now, ms)
    r.add("length_ms", ms).add("failures", c.meter.lastgasp.failures)
    return status.OK, min(ms // 10, 0xFFFF)


def p_load(c, args, now, r):
    ld = c.load
    if ld is None:
        r.fail("E_UNSUPPORTED", "no metrology wrapper")
        return status.E_UNSUPPORTED, 0
    if len(args) == 1 and args[0] == "off":
        c.stop_load()
        r.add("w", 0).add("injected_j", ld.injected_j)
        return status.OK, 0
    w = _int(args[0], 1, c.max_power_w) if len(args) == 2 else None
    s = _int(args[1], 1, LOAD_MAX_S) if len(args) == 2 else None
    if w is None or s is None:
        r.fail("E_ARGS", "load <W 1..%d> <s 1..%d> | load off" % (c.max_power_w, LOAD_MAX_S))
        return status.E_RANGE, 0
    c.start_load(now, w, s)
    r.add("w", w).add("seconds", s).add("injected_j", ld.injected_j)
    return status.OK, w


def p_relay(c, args, now, r):
    lim = c.meter.limiter
    what = args[0] if len(args) == 1 else ""
    arg = {"test": 1, "open": 2, "close": 3}.get(what, 0)
    if not arg:
        r.fail("E_ARGS", "relay test|open|close")
        return status.E_MALFORMED, 0
    if lim is None:
        r.fail("E_UNSUPPORTED", "no relay")
        return status.E_UNSUPPORTED, arg
    err = c.relay_action(now, what)
    if err:
        r.fail(err, "the breaker is not closed by the limiter, or a test is running")
        return status.E_STATE, arg
    c.relay_report(r)
    return status.OK, arg


def p_drill(c, args, now, r):
    lim = c.meter.limiter
    if lim is None:
        r.fail("E_UNSUPPORTED", "no relay: no drill")
        return status.E_UNSUPPORTED, 0
    a = _int(args[0], 1, 255) if len(args) == 2 else None
    s = _int(args[1], 1, 86_400) if len(args) == 2 else None
    if a is None or s is None:
        r.fail("E_ARGS", "drill <limit A> <seconds>")
        return status.E_RANGE, 0
    st = lim.drill_now(a, s, now)
    if st != status.OK:
        r.fail("E_" + status.NAMES[st].upper(), "allowed limits %s" % (lim.allowed,))
        return st, a
    c.drill_end = lim.demand_end_ms  # ended with bench mode if still running then
    r.add("limit_a", a).add("seconds", s)
    return status.OK, a


def p_setclock(c, args, now, r):
    t = parse_iso(args[0]) if 1 <= len(args) <= 2 else None
    force = len(args) == 2 and args[1] == "force"
    if t is None or (len(args) == 2 and not force):
        r.fail("E_ARGS", "setclock YYYY-MM-DDTHH:MM:SS [force]")
        return status.E_MALFORMED, 0
    try:
        jump = c.meter.set_clock(t[0], t[1], force)
    except SettingError as e:
        r.fail(error_code(e), "a change over an hour needs force")
        return status.E_RANGE, 2 if force else 1
    r.add("time", iso(t[0], t[1])).add("jump_s", jump).add("forced", force)
    return status.OK, 2 if force else 1


def p_provision(c, args, now, r):
    m = c.meter
    if len(args) != 2:
        r.fail("E_ARGS", "provision <meter id, 8 characters> <key hex, 16..64 bytes>")
        return status.E_MALFORMED, 0
    mid = args[0].encode()
    try:
        key = bytes.fromhex(args[1])
    except ValueError:
        key = b""
    if len(mid) != 8 or not 16 <= len(key) <= 64:
        r.fail("E_ARGS", "meter id of 8 characters, key of 16..64 bytes in hex")
        return status.E_RANGE, 0
    if m.store is not None or c.auth.meter_keyed or m.hal.key:
        # the journal (and every alarm and command) is sealed with the key the meter has: a
        # new key would turn every record into tamper evidence at the next boot, and a bench
        # key must not re-key a meter in service
        r.fail("E_PROVISIONED", "this meter has a per-meter key: provision blank meters only")
        return status.E_STATE, len(key)
    g = m.regs
    if any(g.count) or any(g.rem_dwh) or any(g.rem_j):
        r.fail("E_REGISTERS_NOT_ZERO", "provision a blank meter only: its seals use the key")
        return status.E_STATE, len(key)
    if not m.hal.provision(mid, key):
        r.fail("E_UNSUPPORTED", "this board cannot store an id and key")
        return status.E_UNSUPPORTED, len(key)
    r.add("meter_id", args[0]).add("key_bytes", len(key)).add("effective", "next boot")
    return status.OK, len(key)


COMMANDS = {
    "help": (c_help, READ, "help", "this list (kind: read, signed, bench = bench mode + signed)"),
    "id": (c_id, READ, "id", "meter id, firmware version, durability, safe mode"),
    "clock": (c_clock, READ, "clock", "wall clock and its validity"),
    "regs": (c_regs, READ, "regs", "energy registers with unit and coefficient"),
    "inst": (c_inst, READ, "inst", "instantaneous power, current, voltage; sample counts"),
    "ring": (c_ring, READ, "ring [n]", "the 1-minute ring, newest first"),
    "intervals": (c_intervals, READ, "intervals", "newest 5-minute and 30-minute values"),
    "events": (c_events, READ, "events [n]", "newest events"),
    "audit": (c_audit, READ, "audit [n]", "newest command audit entries"),
    "limiter": (c_limiter, READ, "limiter", "limiter, breaker and reservations"),
    "drill": (p_drill, PRIV | BENCH, "drill <A> <s>", "run a drill on demand"),
    "drillreport": (c_drill, READ, "drillreport", "the drill report"),
    "lastgasp": (c_lastgasp, READ, "lastgasp", "Last Gasp state, counters, budget, messages"),
    "journal": (c_journal, READ, "journal [audit]", "journal health; audit re-verifies"),
    "heap": (c_heap, READ, "heap", "heap free/allocated, metering step time"),
    "broute": (c_broute, READ, "broute [probe]", "B-route module; probe: ECHONET Get E0"),
    "aroute": (c_aroute, READ, "aroute", "A-route state"),
    "bench": (c_bench, READ, "bench [off]", "bench mode state; off leaves it"),
    "stats": (c_stats, READ, "stats", "console counters"),
    "json": (c_json, READ, "json on|off", "one JSON object per reply line"),
    "challenge": (c_challenge, READ, "challenge", "a nonce to sign a privileged line with"),
    "bench on": (p_bench, PRIV, "bench on", "enter bench mode (signed; ends on its own)"),
    "fail": (p_fail, PRIV | BENCH, "fail <ms>", "inject a power failure of <ms>"),
    "load": (p_load, PRIV | BENCH, "load <W> <s> | load off", "inject a metrology load"),
    "relay": (p_relay, PRIV | BENCH, "relay test|open|close", "relay with feedback check"),
    "setclock": (p_setclock, PRIV | BENCH, "setclock <iso> [force]", "set the wall clock"),
    "provision": (p_provision, PRIV | BENCH, "provision <id> <keyhex>", "meter id and key"),
}
PRIV_AUDIT = {"bench on": AUDIT_BENCH, "fail": AUDIT_FAIL, "load": AUDIT_LOAD,
              "relay": AUDIT_RELAY, "drill": AUDIT_DRILL, "setclock": AUDIT_CLOCK,
              "provision": AUDIT_PROVISION}
