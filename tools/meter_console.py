"""Bench console client: talk to a meter's console over a serial port, run its acceptance test.

    python tools/meter_console.py                       interactive (help, history, Ctrl-D quits)
    python tools/meter_console.py regs                  one command, then exit
    python tools/meter_console.py --json ring 5         replies as one JSON object per line
    python tools/meter_console.py --run bench.txt       a script: one command per line, # comments
    python tools/meter_console.py --key var/meter.key accept     the acceptance test

The port is found with serial.tools.list_ports (USB-serial bridges and Espressif USB: CP210x,
CH34x, FTDI, Prolific, 303A); give --port when there are several, or for a pseudo-terminal
(`make sim ARGS="--console"` prints its path). Privileged commands (`help` lists them as
signed or bench) are signed automatically: the tool asks the meter for a challenge and
appends mac=<HMAC-SHA256> computed with the per-meter key (--key FILE / --key-hex) or the
bench key (--bench-key-hex). The meter refuses them outside bench mode (the bench pin held at
boot, or a signed `bench on`) and after the bench timeout.

`accept` runs the scripted acceptance test and prints one pass/fail line per step: identity
and clock, registers counting under an injected load, the 1-minute capture at a boundary, a
power failure (sealed alarm, restoration notice, registers unchanged across it), the relay
test with its feedback check, a journal audit and a B-route answer. Exit status 0 when every
step passed.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

PREFIX = b"meter-console:"  # the signed message (firmware meter/console/auth.py, documented)
USB_VIDS = {0x10C4: "CP210x", 0x1A86: "CH34x", 0x0403: "FTDI", 0x067B: "Prolific",
            0x303A: "Espressif USB"}
HISTORY = os.path.expanduser("~/.meter_console_history")
LOCAL_HELP = """local commands (not sent to the meter):
  accept            the acceptance test (pass/fail per step)
  sign <line>       send <line> signed (privileged commands are signed anyway)
  quit / exit       leave (Ctrl-D too)"""


class ConsoleError(Exception):
    """A reply line that said ERROR, or no reply."""


def find_ports(list_ports=None):
    """Candidate meter ports: USB-serial bridges and Espressif USB (device, description)."""
    if list_ports is None:
        from serial.tools import list_ports
    found = []
    for p in list_ports.comports():
        if p.vid in USB_VIDS or (p.vid is None and "ttyACM" in p.device):
            found.append((p.device, "%s %s" % (USB_VIDS.get(p.vid, "USB"), p.description)))
    return found


def auto_port():
    ports = find_ports()
    if len(ports) == 1:
        return ports[0][0]
    if not ports:
        raise SystemExit("meter_console: no USB serial port found; give --port PATH")
    raise SystemExit("meter_console: several ports, give --port:\n" + "\n".join(
        "  %s  %s" % p for p in ports))


def sign(key, meter_id, nonce, text):
    """The mac= of a privileged line: HMAC-SHA256(key, PREFIX + id + ':' + nonce + ':' +
    text), text the line's tokens joined by single spaces."""
    msg = PREFIX + meter_id + b":" + nonce + b":" + " ".join(text.split()).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


class ConsoleClient:
    """The meter's console on a pyserial port (or any object with write/readline)."""

    def __init__(self, ser, meter_key=None, bench_key=None, timeout=10.0):
        self.ser = ser
        self.meter_key = meter_key
        self.bench_key = bench_key
        self.timeout = timeout
        self.json_mode = None  # the meter's output mode as last set by this client
        self._privileged = None
        self.pause = time.sleep  # how the acceptance test waits between polls

    # ---- lines ----------------------------------------------------------------------

    def _readline(self, deadline):
        while time.monotonic() < deadline:
            raw = self.ser.readline()
            if raw:
                return raw.decode("ascii", "replace").rstrip("\r\n")
        raise ConsoleError("E_TIMEOUT no reply from the meter")

    def sync(self):
        """Discard stale input and put the meter in JSON mode (a fresh connection)."""
        if hasattr(self.ser, "reset_input_buffer"):
            self.ser.reset_input_buffer()
        self.ser.write(b"\n")
        self.set_mode(True, force=True)

    def set_mode(self, as_json, force=False):
        if self.json_mode == as_json and not force:
            return
        self.ser.write(("json %s\n" % ("on" if as_json else "off")).encode())
        deadline = time.monotonic() + self.timeout
        while True:
            line = self._readline(deadline)
            if as_json and line.startswith("{") and '"cmd": "json"' in line:
                break
            if not as_json and (line == "OK" or line.startswith("ERROR")):
                break
        self.json_mode = as_json

    def call(self, line):
        """Send one line in JSON mode; the reply object (a dict). Raises ConsoleError for an
        ERROR reply (args: code, detail, the reply)."""
        self.set_mode(True)
        self.ser.write(line.encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        while True:
            text = self._readline(deadline)
            if not text.startswith("{"):
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if obj.get("ok"):
                return obj
            raise ConsoleError(obj.get("error"), obj.get("detail"), obj)

    def human(self, line):
        """Send one line in human mode; the reply's lines (the last one OK or ERROR ...)."""
        self.set_mode(False)
        self.ser.write(line.encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        out = []
        while True:
            text = self._readline(deadline)
            out.append(text)
            if text == "OK" or text.startswith("ERROR"):
                return out

    # ---- signing --------------------------------------------------------------------

    def privileged(self):
        """Names of the commands the meter marks signed or bench (from its help)."""
        if self._privileged is None:
            rows = self.call("help")["command"]
            self._privileged = {r[0] for r in rows if r[1] != "read"}
        return self._privileged

    def needs_signing(self, line):
        words = line.split()
        if not words or words[-1].startswith("mac="):
            return False
        name = words[0].lower()
        if name == "bench" and len(words) > 1 and words[1] == "on":
            name = "bench on"
        return name in self.privileged()

    def signed_line(self, line):
        key = self.meter_key or self.bench_key
        if key is None:
            raise ConsoleError("E_NO_KEY", "privileged command: give --key or --bench-key-hex")
        ch = self.call("challenge")
        mac = sign(key, ch["meter_id"].encode(), bytes.fromhex(ch["nonce"]), line)
        return " ".join(line.split()) + " mac=" + mac

    def run(self, line, as_json=False):
        """A line as a person types it (signed when privileged): the reply's text lines
        (JSON: one line). Raises ConsoleError only for transport problems."""
        if self.needs_signing(line):
            line = self.signed_line(line)
        if as_json:
            self.set_mode(True)
            self.ser.write(line.encode() + b"\n")
            deadline = time.monotonic() + self.timeout
            while True:
                text = self._readline(deadline)
                if text.startswith("{"):
                    return [text]
        return self.human(line)

    def do(self, line):
        """call() with signing: the reply dict of a command (privileged ones signed)."""
        if self.needs_signing(line):
            line = self.signed_line(line)
        return self.call(line)


# ---- the acceptance test ------------------------------------------------------------------

class Step:
    def __init__(self, number, name):
        self.number = number
        self.name = name
        self.ok = False
        self.detail = ""
        self.seconds = 0.0

    def line(self):
        return "%2d %-28s %s  %s" % (self.number, self.name, "PASS" if self.ok else "FAIL",
                                     self.detail)

    def as_dict(self):
        return {"step": self.number, "name": self.name, "pass": self.ok,
                "detail": self.detail, "seconds": round(self.seconds, 2)}


def _wait(client, cmd, done, timeout, pause=0.05):
    """Poll `cmd` until done(reply) is true; returns the last reply (raises on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.call(cmd)
        if done(r):
            return r
        if time.monotonic() > deadline:
            raise ConsoleError("E_TIMEOUT", "%s did not reach the expected state" % cmd, r)
        client.pause(pause)


def _outage_fields(hexmsg, key):
    """(decoded dict, seal verified) of an alarm or notice the console shows in hex."""
    import headend_alarms as ha

    raw = bytes.fromhex(hexmsg)
    if key is not None:
        return ha.decode_outage(raw, key), True
    layout = ha.LAYOUTS.get(raw[0]) if raw else None
    if layout is None or len(raw) != layout.size:
        raise ValueError("E_LENGTH")
    values = layout.body.unpack(raw[:layout.body.size])
    out = {"type": layout.name}
    out.update(zip(layout.fields, values[1:]))
    return out, False


def step_identity(c, opts):
    ident = c.call("id")
    clock = c.call("clock")
    if opts.get("set_clock"):
        t = time.localtime()
        want = "%04d-%02d-%02dT%02d:%02d:%02d" % t[:6]
        c.do("setclock %s force" % want)
        clock = c.call("clock")
    if opts.get("meter_id") and ident["meter_id"] != opts["meter_id"]:
        return False, "meter id %s, expected %s" % (ident["meter_id"], opts["meter_id"])
    if not clock["valid"]:
        return False, "meter id %s firmware %d: clock NOT valid" % (ident["meter_id"],
                                                                    ident["firmware"])
    return True, "meter id %s, firmware %d, clock %s%s" % (
        ident["meter_id"], ident["firmware"], clock["time"],
        "" if ident["durable"] else ", NOT durable")


def step_load(c, opts):
    w, s = opts.get("load_w", 2000), opts.get("load_s", 30)
    before = c.call("regs")
    b0 = c.call("bench")["injected_j"]
    c.do("load %d %d" % (w, s))
    bench = _wait(c, "bench", lambda r: r["load_w"] == 0, opts["wait_s"] + s * 2)
    after = c.call("regs")
    added = bench["injected_j"] - b0
    got = after["e0_j"] - before["e0_j"]
    # every sample polled while the load runs carries it over the sample's whole duration:
    # within a sample of w x s at either end
    ok = w * (s - 2) <= added <= w * (s + 2) and got >= added and after["e0"] > before["e0"]
    return ok, "%d W for %d s: load %d J, E0 +%d J (%s -> %s kWh)" % (
        w, s, added, got, before["e0_kwh"], after["e0_kwh"])


def step_capture(c, opts):
    clock = c.call("clock")
    if not clock["valid"]:
        return False, "clock not valid: nothing is captured"
    boundary = clock["minute"] + 1
    e0_before = c.call("regs")["e0"]
    _wait(c, "clock", lambda r: r["minute"] > boundary or (
        r["minute"] == boundary and r["second"] >= 2), 60 + opts["wait_s"], pause=0.2)
    e0_after = c.call("regs")["e0"]
    ring = c.call("ring 5")
    rows = {r[0]: r for r in ring["min"]}
    row = rows.get(boundary)
    if row is None or row[1] is None:
        return False, "boundary %d missing (newest %d)" % (boundary, ring["newest"])
    ok = e0_before <= row[1] <= e0_after
    return ok, "boundary minute %d captured E0 %d (registers %d..%d)" % (
        boundary, row[1], e0_before, e0_after)


def step_power(c, opts):
    key = opts.get("meter_key")
    ms = opts.get("fail_ms", 1500)
    lg0 = c.call("lastgasp")
    regs0 = c.call("regs")
    c.do("fail %d" % ms)
    lg = _wait(c, "lastgasp", lambda r: r["failures"] > lg0["failures"] and r["state"] == "up"
               and not r["notice_pending"], opts["wait_s"] + ms / 1000.0 * 2)
    regs1 = c.call("regs")
    alarm, sealed = _outage_fields(lg["alarm"], key)
    notice, _ = _outage_fields(lg["notice"], key)
    problems = []
    if alarm["type"] != "last_gasp" or notice["type"] != "restored":
        problems.append("message types %s/%s" % (alarm["type"], notice["type"]))
    if lg["edge_to_alarm_ms"] < 0 or notice["flags"] & 0x04:
        problems.append("alarm not handed to the uplink")
    if notice["alarm_seq"] != alarm["seq"] or notice["failures"] != lg0["failures"] + 1:
        problems.append("notice does not follow the alarm")
    if alarm["e0"] != notice["e0"]:
        problems.append("E0 changed across the outage: %d -> %d" % (alarm["e0"], notice["e0"]))
    if not regs0["e0"] <= alarm["e0"] <= regs1["e0"]:
        problems.append("alarm E0 %d outside the registers %d..%d" % (
            alarm["e0"], regs0["e0"], regs1["e0"]))
    detail = "%d ms: alarm seq %d %s in %d ms, notice seq %d after %d s, E0 %d at both" % (
        ms, alarm["seq"], "sealed (verified)" if sealed else "(seal not verified: no meter key)",
        lg["edge_to_alarm_ms"], notice["seq"], notice["duration_s"], alarm["e0"])
    return not problems, "; ".join(problems) or detail


def step_relay(c, opts):
    c.do("relay test")
    b = _wait(c, "bench", lambda r: r["relay_phase"] == "idle", opts["wait_s"])
    ok = b["relay_result"] == "pass"
    return ok, "%s: feedback open %s, closed %s" % (
        b["relay_result"], b["relay_open_sensed"], b["relay_close_sensed"])


def step_journal(c, opts):
    deadline = time.monotonic() + opts["wait_s"] + 30.0
    while True:  # the meter runs one audit per 30 s (it blocks the meter while it runs)
        try:
            j = c.call("journal audit")
            break
        except ConsoleError as e:
            if e.args[0] != "E_BUSY" or time.monotonic() > deadline:
                raise
            c.pause(1.0)
    rec = dict(zip(j["report_fields"], j["audit"]))
    ok = j["audit_ok"] and rec["tamper"] == 0
    return ok, "%d records verified, %d corrupt, %d tamper, %d free slots, %d erases" % (
        rec["records"], rec["corrupt"], rec["tamper"], j["free_slots"], j["erases"])


def step_broute(c, opts):
    b = c.call("broute probe")
    ok = b["e0"] is not None and b["e0"] == b["registers_e0"]
    return ok, "module %s (%s), ECHONET Get E0 -> %s (registers %d)" % (
        b["state"], "link up" if b["link"] else "link down", b["e0"], b["registers_e0"])


STEPS = (("identity and clock", step_identity), ("registers under load", step_load),
         ("1-minute capture", step_capture), ("power failure", step_power),
         ("relay test", step_relay), ("journal audit", step_journal),
         ("B-route answer", step_broute))


def accept(client, opts, out=print, as_json=False):
    """Run every step; returns the Step list. opts: meter_key (bytes or None: the seal is
    then not verified), load_w, load_s, fail_ms, wait_s (slack for a slow board),
    meter_id (expected), set_clock."""
    opts = dict({"wait_s": 30.0}, **opts)
    steps = []
    entered = False
    try:
        bench = client.call("bench")
        if not bench["bench"]:
            client.do("bench on")
            entered = True
    except ConsoleError as e:
        out("bench mode: %s %s" % (e.args[0], e.args[1] if len(e.args) > 1 else ""))
    for i, (name, fn) in enumerate(STEPS, 1):
        st = Step(i, name)
        t0 = time.monotonic()
        try:
            st.ok, st.detail = fn(client, opts)
        except ConsoleError as e:
            st.ok, st.detail = False, "%s %s" % (e.args[0], e.args[1] if len(e.args) > 1 else "")
        except (ValueError, KeyError) as e:
            st.ok, st.detail = False, "bad reply: %s" % e
        st.seconds = time.monotonic() - t0
        steps.append(st)
        out(json.dumps(st.as_dict()) if as_json else st.line())
    if entered:
        try:
            client.call("bench off")
        except ConsoleError:
            pass
    passed = sum(1 for s in steps if s.ok)
    result = {"result": "PASS" if passed == len(steps) else "FAIL", "passed": passed,
              "steps": len(steps)}
    out(json.dumps(result) if as_json else "result: %s (%d/%d steps)" % (
        result["result"], passed, len(steps)))
    return steps


# ---- the program --------------------------------------------------------------------------

def read_key(path, hex_text):
    if hex_text:
        return bytes.fromhex(hex_text)
    if path:
        with open(path, "rb") as f:
            return f.read()
    return None


def execute(client, line, args, out=print):
    """One line as typed; True when it succeeded."""
    words = line.split()
    if not words:
        return True
    if words[0] == "accept":
        steps = accept(client, accept_opts(args), out, args.json)
        return all(s.ok for s in steps)
    if words[0] == "sign" and len(words) > 1:
        line = client.signed_line(" ".join(words[1:]))
    try:
        lines = client.run(line, as_json=args.json)
    except ConsoleError as e:
        out("ERROR %s %s" % (e.args[0], e.args[1] if len(e.args) > 1 else ""))
        return False
    for text in lines:
        out(text)
    last = lines[-1] if lines else ""
    return not (last.startswith("ERROR") or '"ok": false' in last)


def accept_opts(args):
    return {"meter_key": args.meter_key, "load_w": args.load_w, "load_s": args.load_s,
            "fail_ms": args.fail_ms, "wait_s": args.wait, "meter_id": args.meter_id,
            "set_clock": args.set_clock}


def secret_line(line):
    """True for a line that carries a key (provision <id> <keyhex>): kept out of history."""
    words = line.split()
    if words and words[0] == "sign":
        words = words[1:]
    return bool(words) and words[0].lower() == "provision"


def forget_secret(readline, line):
    """Drop a line that carries a key from readline's history (written to HISTORY at exit)."""
    if readline is None or not secret_line(line):
        return
    n = readline.get_current_history_length()
    if n > 0:
        readline.remove_history_item(n - 1)


def interactive(client, args):
    try:
        import readline
    except ImportError:  # not on every platform: no history then
        readline = None
    if readline is not None:
        try:
            readline.read_history_file(HISTORY)
        except OSError:
            pass
        names = sorted(r[0] for r in client.call("help")["command"]) + ["accept", "sign",
                                                                         "quit"]

        def complete(text, state):
            hits = [n for n in names if n.startswith(text)]
            return hits[state] if state < len(hits) else None

        readline.set_completer(complete)
        readline.parse_and_bind("tab: complete")
    print("meter console on %s: help lists the meter's commands; %s" % (
        args.port, "accept runs the acceptance test, quit leaves"))
    try:
        while True:
            try:
                line = input("meter> ")
            except EOFError:
                print()
                break
            forget_secret(readline, line)
            if line.strip() in ("quit", "exit"):
                break
            if line.strip() == "help":
                execute(client, "help", args)
                print(LOCAL_HELP)
                continue
            execute(client, line, args)
    finally:
        if readline is not None:
            try:
                readline.write_history_file(HISTORY)
            except OSError:
                pass


def open_port(port, baud, timeout=0.1, write_timeout=10.0):
    """A pyserial port (a device path or a pyserial URL); a write that the meter does not
    take within write_timeout raises instead of hanging."""
    import serial

    if "://" in port:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout,
                                     write_timeout=write_timeout)
    return serial.Serial(port, baudrate=baud, timeout=timeout, write_timeout=write_timeout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", help="serial port or pyserial URL (default: auto-detect)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--key", help="per-meter key file (signs privileged commands, verifies "
                   "the Last Gasp seals)")
    p.add_argument("--key-hex", help="per-meter key in hex")
    p.add_argument("--bench-key-hex", help="bench key in hex (signs privileged commands)")
    p.add_argument("--json", action="store_true", help="one JSON object per reply line")
    p.add_argument("--run", metavar="FILE", help="run the commands in FILE (# comments)")
    p.add_argument("--keep-going", action="store_true", help="--run: do not stop at errors")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    p.add_argument("--wait", type=float, default=30.0,
                   help="accept: extra seconds a step may wait for the meter")
    p.add_argument("--load-w", type=int, default=2000, help="accept: injected load, W")
    p.add_argument("--load-s", type=int, default=30, help="accept: injected load, seconds")
    p.add_argument("--fail-ms", type=int, default=1500, help="accept: power failure, ms")
    p.add_argument("--meter-id", help="accept: the meter id expected")
    p.add_argument("--set-clock", action="store_true",
                   help="accept: set the meter's clock to this computer's local time")
    p.add_argument("command", nargs="*", help="one command to run (default: interactive)")
    args = p.parse_args(argv)
    args.meter_key = read_key(args.key, args.key_hex)
    bench_key = bytes.fromhex(args.bench_key_hex) if args.bench_key_hex else None
    if not args.port:
        args.port = auto_port()
    ser = open_port(args.port, args.baud)
    client = ConsoleClient(ser, args.meter_key, bench_key, args.timeout)
    try:
        client.sync()
        if args.run:
            ok = True
            with open(args.run) as f:
                for raw in f:
                    line = raw.split("#", 1)[0].strip()
                    if not line:
                        continue
                    if not args.json:
                        print("> " + line)
                    if not execute(client, line, args):
                        ok = False
                        if not args.keep_going:
                            break
            return 0 if ok else 1
        if args.command:
            return 0 if execute(client, " ".join(args.command), args) else 1
        interactive(client, args)
        return 0
    finally:
        ser.close()


if __name__ == "__main__":
    sys.exit(main())
