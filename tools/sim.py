"""Host simulation of one meter: the real firmware core on a virtual clock with a simulated
household load. Prints one line per simulated minute and a summary when stopped.

    make sim                          accelerated (60x: a simulated minute per second)
    make sim ARGS="--speed 0"         as fast as possible
    make sim ARGS="--realtime"        wall-clock pace
    make sim ARGS="--duration 2d"     stop after two simulated days (also 90m, 12h, 3600s)

The meter keeps its journal in a flash image file (default var/sim-flash.bin, key
var/meter.key): stopped in any way, even with SIGKILL, and started again, it resumes with its
registers, rings, history and events, as a real meter does after an outage; its virtual
clock continues after the newest boundary it had processed. --fresh starts a blank meter,
--no-flash runs from RAM only. Ctrl-C is an orderly power-down (a commit, as the Last Gasp
makes, and the retained memory is lost). The registers' running copy sits in a retained-memory
file next to the flash image (default var/sim-flash-retained.bin: the board's RTC memory),
so a SIGKILL (a crash) loses no energy and no value served before it is lower after it.

While it runs, the meter serves the B-route (ECHONET Lite over UDP) at 127.0.0.2:3610
(--broute HOST:PORT to move it, --broute off to disable): point a HEMS client at it, e.g.
pychonet bound to 127.0.0.1:3610 with discover("127.0.0.2"), or discover() by multicast
(the module joins 224.0.23.0 on the loopback and announces its instances there).

The meter has its relay (a simulated one whose feedback contact follows in 20 ms) with the
household downstream of it: the limiter, reservations, drill and commands run, and the load
reads 0 while the breaker is open (--no-relay: a meter without one). --commands HOST:PORT
takes signed head-end requests on a loopback UDP port (tools/sim_control.py says how to
send them with tools/headend.py).

--mqtt HOST:PORT (default off, so `make sim` needs no broker) connects the meter's A-route
to an MQTT broker (docs/aroute.md; needs the flash image's key): it publishes its birth,
pushes its 1/5/30-minute values and events, backfills what it could not send, takes signed
commands on its `down` topic, and prints a line when the broker acknowledges a message
and when a backfill starts or ends.

--console serves the bench console (firmware meter/console) on a pseudo-terminal whose path
it prints: `python tools/meter_console.py --port <path> --key var/meter.key` talks to it,
and its `accept` runs the acceptance test against the simulated meter. The console's meter
has a power-good input (always high unless the console injects a failure) and, without an
A-route, a recording stand-in uplink that takes the Last Gasp alarm and notice.
"""

import argparse
import datetime
import errno
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("board/cpython", "firmware", "board", "host_tests"):
    sys.path.insert(0, os.path.join(ROOT, sub))

from meter.assembly import build_meter  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402
from meter.metering.samples import REJECTED  # noqa: E402
from meter.metering.registers import FWD, REV, UNIT_DWH, delta  # noqa: E402
from meter.metering import intervals  # noqa: E402
from meter.broute import pump as broute  # noqa: E402
from meter.storage import retained  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.flash_file import FileNorFlash  # noqa: E402
from hosthal.retained import FileRetained  # noqa: E402
from hosthal.keyfile import host_key  # noqa: E402
from hosthal.downstream import Downstream  # noqa: E402
from hosthal.pins import TimedRelay  # noqa: E402
from sim_control import BreakerWatch, CommandPort, describe_response  # noqa: E402

EPOCH_2000 = datetime.datetime(2000, 1, 1)


def parse_duration(text):
    """'90m', '12h', '3d', '3600s' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def retained_path(flash):
    """The retained-memory file next to a flash image: var/sim-flash.bin ->
    var/sim-flash-retained.bin."""
    root, _ = os.path.splitext(flash)
    return root + "-retained.bin"


def wall_seconds_from(dt):
    return int((dt - EPOCH_2000).total_seconds())


def fmt_time(minute, second=0):
    dt = EPOCH_2000 + datetime.timedelta(minutes=minute, seconds=second)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def kwh(regs, count):
    """Register counts -> kWh as a decimal string with the register's resolution."""
    dwh = count * regs.count_dwh()
    whole, frac = divmod(dwh, 10_000)
    return "%d.%04d" % (whole, frac)


class SimConfig:
    """Meter settings for the simulation (the board definition's role on a board)."""

    def __init__(self, args):
        self.UNIT = args.unit
        self.COEFFICIENT = 1
        self.METER_ID = b"SIM00001"
        self.CONSOLE = bool(getattr(args, "console", False))
        # bench mode runs on the simulated clock: a simulated day (24 min at 60x)
        self.CONSOLE_BENCH_S = 86_400


def host_radio(spec):
    """The simulation's B-route module: a UDP socket at HOST:PORT, provisioned with the key
    the simulated A-route derives for it. Returns (module, master key) or (None, None)."""
    if spec == "off":
        return None, None
    from broute_udp import SIM_MASTER_KEY, udp_module

    host, _, port = spec.rpartition(":")
    return udp_module(host, int(port)), SIM_MASTER_KEY


class PtyPort:
    """The bench console's serial port in the simulation: the master side of a pseudo-
    terminal (meter.hal.Uart: non-blocking, readinto() 0 when nothing is there, write() the
    bytes taken). The slave side stays open here too, in raw mode, so the line neither
    hangs up nor echoes while no client is connected; `path` is what a client opens."""

    def __init__(self):
        import fcntl
        import tty

        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        fl = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.path = os.ttyname(self._slave)

    def readinto(self, buf):
        try:
            data = os.read(self.master, len(buf))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return 0
            raise
        buf[:len(data)] = data
        return len(data)

    def write(self, buf):
        try:
            return os.write(self.master, bytes(buf))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return 0
            raise

    def any(self):
        return 0

    def close(self):
        os.close(self.master)
        os.close(self._slave)


class Simulation:
    def __init__(self, args):
        start = (datetime.datetime.strptime(args.start, "%Y-%m-%dT%H:%M")
                 if args.start else datetime.datetime.now().replace(microsecond=0))
        self.clock = VirtualClock(wall_s=wall_seconds_from(start))
        self.front = SimulatedHousehold(self.clock, seed=args.seed, pv_w=args.pv, ev_w=args.ev,
                                        three_wire=args.three_wire)
        # the household is downstream of the relay: no load while its contacts are open
        self.relay = None if args.no_relay else TimedRelay(self.clock)
        load = self.front if self.relay is None else Downstream(self.front, self.relay)
        hal = HostHal(self.clock, load, relay=self.relay)
        hal.radio, hal.broute_key = host_radio(args.broute)
        if getattr(args, "mqtt", None):
            from hosthal.tcplink import TcpLink

            host, _, port = args.mqtt.rpartition(":")
            hal.link = TcpLink(host, int(port))  # the A-route (built with a key only)
        key = None
        if not args.no_flash:
            hal.flash = FileNorFlash(args.flash, sectors=args.sectors, blank=args.fresh)
            hal.retained = FileRetained(args.retained or retained_path(args.flash))
            if args.fresh:
                hal.retained.power_off()  # a blank meter: nothing retained either
            key = host_key(args.key)
        self.key = key
        self.pty = None
        if args.console:
            from meter.hal import BenchConsole
            from hosthal.pins import ScriptedPowerGood
            from hosthal.uplink import FakeUplink

            self.pty = PtyPort()
            hal.console = BenchConsole(self.pty)
            if hal.power_good is None:  # what the console injects power failures through
                hal.power_good = ScriptedPowerGood(1)
            if hal.uplink is None and getattr(hal, "link", None) is None:
                hal.uplink = FakeUplink()  # takes the Last Gasp alarm and notice
        self.meter = build_meter(hal, SimConfig(args), key=key)
        if self.meter.aroute is not None:
            self.meter.aroute.trace = self.print_aroute
        self.commands = CommandPort(args.commands) if args.commands else None
        self.watch = BreakerWatch()
        self.args = args
        self.stop = False
        self.seconds = 0
        self.max_w = 0
        self.rejected = 0
        self.start_fwd = 0
        self.start_rev = 0
        self.last_fwd = None

    def run(self):
        a = self.args
        m = self.meter
        resumed = False

        def continue_clock(meter):
            # the simulation's time source: after the restore, a virtual clock that ran
            # ahead of real time before continues from where it was
            nonlocal resumed
            hw = meter.capture.high_water
            resumed = hw >= 0
            if resumed and a.start:
                # --start on a resumed meter is a clock command: from the restored time to
                # the one asked, through the clock-adjust path (events, forced and logged;
                # a start behind the restored boundaries drops those stamped after it)
                want_m, want_s = self.clock.wall_minute(), self.clock.wall_second()
                self.clock.set_wall(hw + 1, 0)
                if (want_m, want_s) != (hw + 1, 0):
                    meter.set_clock(want_m, want_s, force=True)
            elif resumed and self.clock.wall_minute() <= hw:
                self.clock.set_wall(hw + 1, 0)

        m.boot(set_clock=continue_clock)
        if m.store is not None:
            rep = m.mount_report
            if rep.damaged:
                what = "DAMAGED (%d sectors not a journal: preserved, reported)" % rep.damaged
            else:
                what = "resumed" if resumed else "blank meter"
            print("flash %s: %s, %d records, %d corrupt, seal chain %s" % (
                a.flash, what, rep.records, rep.corrupt,
                "verified" if rep.chain_ok() else "BROKEN (tamper event logged)"))
            print("restored E0 %s kWh, E3 %s kWh%s; retained memory: %s" % (
                kwh(m.regs, m.regs.count[FWD]), kwh(m.regs, m.regs.count[REV]),
                "" if m.store.registers_valid else " (NOT VALID: served as no data)",
                retained.STATE_NAMES[m.store.retained_state]), flush=True)
        self.start_fwd = m.regs.count[FWD]
        self.start_rev = m.regs.count[REV]
        limit = parse_duration(a.duration) if a.duration else None
        pace = 1.0 if a.realtime else (1.0 / a.speed if a.speed > 0 else 0.0)
        t0 = time.monotonic()
        print("simulated meter: start %s, unit %s kWh x %d, %s" % (
            fmt_time(self.clock.wall_minute(), self.clock.wall_second()),
            "%g" % (UNIT_DWH[m.regs.unit] / 10000), m.regs.coefficient,
            "real time" if a.realtime else ("x%g" % a.speed if a.speed else "max speed")))
        print("%-19s %12s %10s %7s %7s %7s %8s" % (
            "time", "E0 kWh", "E3 kWh", "P W", "I A", "V", "1min kWh"))
        if a.broute != "off":
            m.serve()
            print("B-route (ECHONET Lite) on %s, module %s" % (
                a.broute, broute.STATE_NAMES[m.broute.state]))
        if self.pty is not None:
            print("console on %s (python tools/meter_console.py --port %s --key %s)" % (
                self.pty.path, self.pty.path, a.key), flush=True)
        if self.commands is not None:
            print("head-end commands on %s:%d (meter id %s, wall minute %d)%s" % (
                self.commands.address[0], self.commands.address[1], m.meter_id.decode(),
                self.clock.wall_minute(), "" if m.commands else ": NO KEY, run with flash"),
                flush=True)
        if m.aroute is not None:
            print("A-route: MQTT %s, topics %s..." % (a.mqtt, m.aroute.t_down[:-4].decode()),
                  flush=True)
            if not a.realtime:  # a request's expiry is on the head-end's (wall) clock
                print("A-route: the simulated clock is not the wall clock, and head-end "
                      "commands (tools/headend_mqtt.py) expire on the wall clock: run with "
                      "--realtime to send them", flush=True)
        elif getattr(a, "mqtt", None):
            print("A-route: off (no key: run with a flash image)", flush=True)
        while not self.stop and (limit is None or self.seconds < limit):
            t_step = time.perf_counter_ns()
            bits = m.step()
            m.note_step_us((time.perf_counter_ns() - t_step) // 1000)
            m.serve()
            if m.aroute is not None:
                self.aroute_settle()
            m.console_poll()
            self.control_step()
            m.idle()
            if bits & REJECTED:
                self.rejected += 1
            if bits & intervals.CAPTURED and not a.quiet:
                self.print_minute()
            if m.metering.p_w > self.max_w:
                self.max_w = m.metering.p_w
            self.clock.advance(1000)
            self.seconds += 1
            if pace:
                ahead = t0 + self.seconds * pace - time.monotonic()
                while ahead > 0 and not self.stop:
                    time.sleep(min(ahead, 0.01))  # keep answering B-route requests
                    m.serve()
                    m.console_poll()
                    if self.commands is not None:
                        self.commands.poll(m, self.print_command)
                    ahead = t0 + self.seconds * pace - time.monotonic()
        m.power_down()  # an orderly power-down commits like the Last Gasp, radios off
        if m.hal.retained is not None:
            m.hal.retained.power_off()  # and the supply is gone: RTC memory with it
        self.summary(time.monotonic() - t0)

    def aroute_settle(self, limit_s=0.02):
        """A virtual clock far ahead of real time: give the broker a few real ms while
        messages are in flight, so the keep-alive and back-off see its answers in time."""
        a = self.meter.aroute
        c = a.client
        t = time.monotonic()
        while (c.inflight or len(c.outgoing()) or c.waiting() or a.session.state in (1, 2)) \
                and time.monotonic() - t < limit_s:  # (a ping, a connect: the broker's turn)
            time.sleep(0.0005)
            self.meter.serve()

    def print_aroute(self, what, stream, x, y):
        series = ("30-min", "5-min", "1-min", "events")[stream]
        stamp = fmt_time(self.clock.wall_minute(), self.clock.wall_second())
        if what == "ack":
            print("%-19s A-route: acknowledged %s %d..%d" % (stamp, series, x, x + y - 1),
                  flush=True)
        elif what == "backfill_start":
            print("%-19s A-route: backfill %s starts: %d items (%d..%d)" % (
                stamp, series, y - x, x, y - 1), flush=True)
        elif what == "backfill_end":
            print("%-19s A-route: backfill %s done" % (stamp, series), flush=True)

    def control_step(self):
        """Head-end commands waiting on the command port, then what the limiter changed."""
        m = self.meter
        if self.commands is not None:
            self.commands.poll(m, self.print_command)
        if m.limiter is not None:
            line = self.watch.poll(m.limiter)
            if line:
                print("%-19s %s; I %s A" % (
                    fmt_time(self.clock.wall_minute(), self.clock.wall_second()), line,
                    "%d.%02d" % (m.metering.i_ma // 1000, m.metering.i_ma % 1000 // 10)),
                    flush=True)

    def print_command(self, req, resp):
        print("%-19s command: %s" % (
            fmt_time(self.clock.wall_minute(), self.clock.wall_second()),
            describe_response(self.meter.meter_id, self.key, resp).replace("\n", ";")),
            flush=True)

    def print_minute(self):
        m = self.meter
        met = m.metering
        fwd = m.regs.count[FWD]
        step = "" if self.last_fwd is None else kwh(m.regs, delta(fwd, self.last_fwd))
        self.last_fwd = fwd
        volt = "-" if met.v_dv < 0 else "%d.%d" % divmod(met.v_dv, 10)
        print("%-19s %12s %10s %7d %7s %7s %8s" % (
            fmt_time(self.clock.wall_minute()), kwh(m.regs, fwd), kwh(m.regs, m.regs.count[REV]),
            met.p_w, "%d.%02d" % (met.i_ma // 1000, met.i_ma % 1000 // 10), volt, step),
            flush=True)

    def summary(self, elapsed):
        m = self.meter
        days = self.seconds / 86400
        print()
        print("summary: %d simulated seconds (%.3f days) in %.2f s real time, %.1f days/s" % (
            self.seconds, days, elapsed, days / elapsed if elapsed > 0 else 0.0))
        print("  E0 forward  %s kWh (+%s)" % (
            kwh(m.regs, m.regs.count[FWD]), kwh(m.regs, delta(m.regs.count[FWD], self.start_fwd))))
        print("  E3 reverse  %s kWh (+%s)" % (
            kwh(m.regs, m.regs.count[REV]), kwh(m.regs, delta(m.regs.count[REV], self.start_rev))))
        print("  peak power  %d W; samples %d, rejected %d, front end silent %d s" % (
            self.max_w, m.metering.samples, self.rejected, m.silent))
        print("  minute boundaries missed %d; events logged %d" % (
            m.capture.missed, m.events.seq))
        if m.store is not None:
            print("  journal: %d page programs, %d sector erases, %d commits" % (
                m.journal.programs, m.journal.erases, m.store.commits))
        if m.broute is not None:
            print("  B-route frames received %d, sent %d" % (
                m.broute.count[broute.RX], m.broute.count[broute.TX]))
        if m.echonet is not None:
            print("  ECHONET fault status (0x88): %s" % (
                "0x41 FAULT" if m.echonet.objects[0].faulty() else "0x42 none"))
        if m.limiter is not None:
            from meter.control.limiter import STATE_NAMES

            lim = m.limiter
            print("  breaker %s, limit %d A (contract %d A), trips %d, relay operations %d, "
                  "load cut off %d s" % (STATE_NAMES[lim.state], lim.active_a, lim.contract,
                                         lim.trips, self.relay.operations,
                                         m.metrology.cut_polls))
        if m.aroute is not None:
            ar = m.aroute
            print("  A-route: %d connections, %d messages published, %d acknowledged, %d "
                  "backfill, %d resent, %d commands" % (ar.connects, ar.published, ar.acked,
                                                        ar.backfill_sent, ar.resent,
                                                        ar.commands))
        if self.commands is not None:
            print("  head-end commands %d (unanswered %d)" % (
                self.commands.handled, self.commands.unanswered))
            self.commands.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (0 = as fast as possible)")
    p.add_argument("--realtime", action="store_true", help="run at wall-clock pace")
    p.add_argument("--duration", help="stop after this simulated time (e.g. 90m, 12h, 2d)")
    p.add_argument("--start", help="simulated start time YYYY-MM-DDTHH:MM (default: now)")
    p.add_argument("--seed", type=int, default=1, help="household load random seed")
    p.add_argument("--pv", type=int, default=0, help="rooftop PV peak watts (reverse flow)")
    p.add_argument("--ev", type=int, default=0, help="EV charger watts (charges from 23:00)")
    p.add_argument("--three-wire", action="store_true",
                   help="single-phase three-wire 200 V supply (R and T currents)")
    p.add_argument("--unit", type=lambda s: int(s, 0), default=0x02,
                   help="ECHONET E1 unit code (default 0x02 = 0.01 kWh)")
    p.add_argument("--quiet", action="store_true", help="no per-minute lines")
    p.add_argument("--flash", default=os.path.join(ROOT, "var", "sim-flash.bin"),
                   help="flash image file (default var/sim-flash.bin)")
    p.add_argument("--key", default=os.path.join(ROOT, "var", "meter.key"),
                   help="per-meter key file, created on first use (default var/meter.key)")
    p.add_argument("--sectors", type=int, default=64,
                   help="journal size in 4 KB sectors (default 64 = 256 KB, as on the boards)")
    p.add_argument("--retained", help="retained-memory file (default: next to the flash "
                   "image, var/sim-flash-retained.bin); kept by SIGKILL, removed by Ctrl-C")
    p.add_argument("--fresh", action="store_true", help="start from a blank meter")
    p.add_argument("--no-flash", action="store_true", help="keep nothing (RAM only)")
    p.add_argument("--broute", default="127.0.0.2:3610",
                   help="serve ECHONET Lite at HOST:PORT (default 127.0.0.2:3610), or off")
    p.add_argument("--no-relay", action="store_true",
                   help="a meter without relay (no limiter, reservations or commands)")
    p.add_argument("--console", action="store_true",
                   help="serve the bench console on a pseudo-terminal (prints its path)")
    p.add_argument("--mqtt", metavar="HOST:PORT",
                   help="connect the A-route to this MQTT broker (default off)")
    p.add_argument("--commands", metavar="HOST:PORT",
                   help="take signed head-end requests (raw or hex) on this loopback UDP port")
    args = p.parse_args(argv)
    try:
        sim = Simulation(args)
    except ValueError as e:  # meter.errors.SettingError: a flash image of the wrong size...
        raise SystemExit("sim: %s" % e)

    def on_signal(signum, frame):
        sim.stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sim.run()


if __name__ == "__main__":
    main()
