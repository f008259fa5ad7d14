"""SIGKILL campaign: the running simulation is killed at random moments; no E0/E3 goes back.

A SIGKILL of tools/sim.py is what a crash, watchdog reset, panic or soft reset is to a board:
no Last Gasp runs, RAM is gone, the flash image and the retained-memory file (RTC memory)
stay. The campaign starts `tools/sim.py --speed 0` on a private flash image, reads E0 and E3
over the B-route (ECHONET Lite Get over UDP, as a HEMS does) as fast as it answers, kills
the process after a random time, restarts it, and checks after every restart:
  * the registers it restored (its "restored E0 ... E3 ..." line, exact: 0.1 Wh counts) and
    every E0/E3 served after it are not lower than the highest served before the kill (a
    HEMS `total_increasing` series never sees a meter reset). The restored value is the
    sharp check: at --speed 0 the sim has run on for simulated minutes before its first
    answer reaches the campaign;
  * the sim says which source it restored from (retained memory used, stale, blank...):
    counted in the figures.
Ends with an orderly stop (SIGINT) and a restart that must resume from the journal alone
(the retained memory is removed by the power-down), again not lower.

Usage:
  python tools/kill_campaign.py                    200 kills (a few minutes)
  python tools/kill_campaign.py --kills 1000 --seed 7
  python tools/kill_campaign.py --without-retained the baseline: the same firmware with the
                                                   retained copy never written (as before
                                                   issue 11): served values do go back
Prints the figures; exit status 1 on any served value going backwards.
"""

import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "sim.py")
_NO_DATA = 0xFFFFFFFE
# the baseline: tools/sim.py with Store.retain() a no-op (a board without retained memory)
_WITHOUT_RETAINED = """
import runpy, sys
sys.path[:0] = [%r + p for p in ("/board/cpython", "/firmware", "/board", "/host_tests",
                                  "/tools")]
from meter.storage.store import Store
Store.retain = lambda self: None
sys.argv = [%r] + sys.argv[1:]
runpy.run_path(%r, run_name="__main__")
""" % (ROOT, SIM, SIM)


def echonet_get(tid, epcs=(0xE0, 0xE3)):
    body = struct.pack(">BBH3s3sBB", 0x10, 0x81, tid & 0xFFFF, b"\x05\xff\x01",
                       b"\x02\x88\x01", 0x62, len(epcs))
    return body + b"".join(bytes([e, 0]) for e in epcs)


def parse_counts(reply):
    """{epc: u32} of a Get_Res (or Get_SNA) from the smart meter object."""
    if len(reply) < 12 or reply[10] not in (0x72, 0x52):
        return {}
    out = {}
    opc = reply[11]
    i = 12
    for _ in range(opc):
        if i + 2 > len(reply):
            break
        epc, pdc = reply[i], reply[i + 1]
        if pdc == 4:
            out[epc] = struct.unpack_from(">I", reply, i + 2)[0]
        i += 2 + pdc
    return out


class Campaign:
    def __init__(self, workdir, addr, seed=1, retained=True):
        self.files = ["--flash", os.path.join(workdir, "flash.bin"),
                      "--key", os.path.join(workdir, "meter.key"), "--quiet",
                      "--unit", "0x04", "--pv", "3000",  # 0.1 Wh counts, E3 counts too
                      "--broute", "%s:%d" % addr, "--start", "2026-03-01T00:00"]
        self.addr = addr
        self.retained = retained
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.tid = 0
        self.high = {0xE0: -1, 0xE3: -1}  # highest value served so far
        self.kills = 0
        self.reads = 0
        self.failures = []
        self.states = {}  # "retained memory: ..." -> restarts
        self.lost = []  # counts (0.1 Wh) restored below what was served

    def start(self, fresh=False):
        prog = [SIM] if self.retained else ["-c", _WITHOUT_RETAINED]
        args = [sys.executable, *prog, "--speed", "0", *self.files]
        if fresh:
            args.append("--fresh")
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, cwd=ROOT)

    def read(self):
        """One Get of E0 and E3, or None when no answer came in time."""
        self.tid += 1
        self.sock.sendto(echonet_get(self.tid), self.addr)
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                reply, _ = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return None
            if struct.unpack_from(">H", reply, 2)[0] == self.tid & 0xFFFF:
                return parse_counts(reply)
        return None

    def check(self, values, what):
        for epc in (0xE0, 0xE3):
            v = values.get(epc)
            if v is None or v == _NO_DATA:
                continue
            if v < self.high[epc]:
                self.failures.append("%s: %02X served %d after %d" % (what, epc, v,
                                                                      self.high[epc]))
            self.high[epc] = max(self.high[epc], v)

    def check_restored(self, restored, before):
        for epc in (0xE0, 0xE3):
            if restored[epc] < before[epc]:
                self.failures.append("restart %d: %02X restored %d, %d served before" % (
                    self.kills, epc, restored[epc], before[epc]))
                self.lost.append(before[epc] - restored[epc])

    def run_once(self, life_s, fresh=False, stop=signal.SIGKILL):
        """Start the sim, check its first value against what was served before, read until
        life_s passed, then stop it with `stop`. Returns the retained state it reported."""
        before = dict(self.high)
        p = self.start(fresh)
        t0 = time.monotonic()
        first = True
        try:
            while time.monotonic() - t0 < life_s or first:
                if p.poll() is not None:
                    break
                v = self.read()
                if v is None or 0xE0 not in v:
                    if time.monotonic() - t0 > 30:
                        self.failures.append("no B-route answer after a restart")
                        break
                    continue
                self.reads += 1
                self.check(v, "restart %d" % self.kills if first else "run %d" % self.kills)
                first = False
        finally:
            p.send_signal(stop)
            out, _ = p.communicate(timeout=60)
        state = "?"
        for ln in out.splitlines():
            if ln.startswith("restored E0 "):
                w = ln.split()
                restored = {0xE0: counts(w[2]), 0xE3: counts(w[5])}
                state = ln.split("retained memory: ", 1)[1]
                self.check_restored(restored, before)
        self.states[state] = self.states.get(state, 0) + 1
        return state

    def run(self, kills, max_life_s=1.5):
        self.run_once(1.0, fresh=True)
        self.kills += 1
        for _ in range(kills - 1):
            self.run_once(self.rng.uniform(0.05, max_life_s))
            self.kills += 1
        # an orderly power-down, then a start from the journal alone
        self.run_once(0.5, stop=signal.SIGINT)
        self.run_once(0.3, stop=signal.SIGINT)
        return not self.failures

    def figures(self):
        worst = max(self.lost) if self.lost else 0
        return ("%d SIGKILLs, %d reads of E0/E3 over the B-route; %d restarts restored a "
                "register below a served value (worst %.1f Wh), %d failures in all; restarts "
                "by retained state: %s; E0 finally %d x 0.1 Wh"
                % (self.kills, self.reads, len(self.lost), worst / 10, len(self.failures),
                   ", ".join("%s %d" % kv for kv in sorted(self.states.items())),
                   self.high[0xE0]))


def counts(kwh):
    """'12.3456' (kWh, the sim's print at unit 0x04) -> 0.1 Wh counts."""
    whole, _, frac = kwh.partition(".")
    return int(whole) * 10_000 + int((frac + "0000")[:4])


def free_addr():
    """A loopback address and UDP port nobody else uses (parallel runs)."""
    host = "127.0.%d.%d" % (random.randint(10, 250), random.randint(2, 250))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return host, port


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-life", type=float, default=1.5,
                   help="longest real seconds a sim runs before it is killed")
    p.add_argument("--without-retained", action="store_true",
                   help="the baseline: the retained copy is never written")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        c = Campaign(d, free_addr(), a.seed, retained=not a.without_retained)
        t0 = time.monotonic()
        ok = c.run(a.kills, a.max_life)
        print(c.figures())
        print("%.0f s" % (time.monotonic() - t0))
        for f in c.failures[:20]:
            print("FAIL", f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
