"""Emulated SKSTACK IP Wi-SUN modules for the B-route, on a pseudo-terminal or in memory.

Two personalities, both sans-IO (feed the bytes a host wrote, get the bytes the module
answers):

* SkDongle: the HEMS-side dongle (ROHM BP35C2 flavour) that HEMS software such as
  momonga opens over serial: ROPT/WOPT, SKVER, SKINFO, SKRESET, SKSREG, SKSETRBID,
  SKSETPWD, SKSCAN (EVENT 20, EPANDESC, EVENT 22), SKLL64, SKJOIN (EVENT 25, or EVENT 24
  for a wrong B-route ID or password), SKSENDTO with a binary payload (EVENT 21, OK) and
  ERXUDP lines (hex payload) carrying the meter's replies, SKTERM (EVENT 27).
* SkCoordinator: the meter-side module (PAN coordinator) that the firmware's
  meter.broute.radio.wisun driver talks to: SKRESET, SKINFO, SKVER, ROPT/WOPT, SKSREG,
  SKSETRBID, SKSETPWD, SKSTART, SKSENDTO; a HEMS joining raises EVENT 25 and its frames
  arrive as ERXUDP.

The meter behind the dongle is a MeterPort: DirectMeterPort hands each frame to the real
firmware ECHONET service (meter.broute.echonet) of a simulated meter; WisunDriverPort goes the
long way, through an SkCoordinator, the firmware's Wi-SUN driver (meter.broute.radio.wisun) on an
in-memory UART and the B-route pump (meter.broute.pump), as on a meter with a Wi-SUN
module.

Run on a pty for a bench or a HEMS program:
    .venv/bin/python tools/wisun_emulator.py [--rbid ID --password PW]
prints the pty path (e.g. /dev/pts/5) to give to momonga as its device.
"""

import argparse
import os
import select
import sys
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "board", "cpython"),
           os.path.join(ROOT, "board"), os.path.join(ROOT, "host_tests"),
           os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

PORT = 0x0E1A
DEFAULT_RBID = "00112233445566778899AABBCCDDEEFF"
DEFAULT_PASSWORD = "0123456789AB"


def link_local(mac_hex):
    """IPv6 link-local address (SKSTACK text form) of a 64-bit MAC: U/L bit flipped."""
    b = bytearray(bytes.fromhex(mac_hex))
    b[0] ^= 0x02
    groups = ["%02X%02X" % (b[i], b[i + 1]) for i in range(0, 8, 2)]
    return "FE80:0000:0000:0000:" + ":".join(groups)


class _CommandReader:
    """Splits a host's byte stream into command lines, and SKSENDTO headers followed by
    their binary payload (the number of fields before the length decides the layout)."""

    def __init__(self, sendto_fields):
        self.buf = bytearray()
        self.sendto_fields = sendto_fields  # words in SKSENDTO up to and including length

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            while self.buf[:1] in (b"\r", b"\n"):
                del self.buf[:1]
            if not self.buf:
                break
            if self.buf.startswith(b"SKSENDTO "):
                words = self.buf.split(b" ", self.sendto_fields)
                if len(words) <= self.sendto_fields:
                    break  # header incomplete
                try:
                    length = int(words[self.sendto_fields - 1], 16)
                except ValueError:
                    length = -1
                head = len(b" ".join(words[:self.sendto_fields])) + 1
                if length < 0:
                    del self.buf[:head]
                    out.append(("FAIL", b"", None))
                    continue
                if len(self.buf) < head + length:
                    break
                payload = bytes(self.buf[head:head + length])
                out.append(("SKSENDTO", bytes(self.buf[:head - 1]), payload))
                del self.buf[:head + length]
                continue
            cut = min([i for i in (self.buf.find(b"\r"), self.buf.find(b"\n")) if i >= 0],
                      default=-1)
            if cut < 0:
                break
            line = bytes(self.buf[:cut])
            del self.buf[:cut + 1]
            out.append(("LINE", line, None))
        return out


class DirectMeterPort:
    """The meter end of the air: frames go straight into the firmware's ECHONET service of
    a simulated meter (tools/demo_meter.DemoMeter or anything with handle(bytes))."""

    def __init__(self, meter, lock=None):
        self.meter = meter
        self.lock = lock or threading.Lock()

    def exchange(self, payload):
        with self.lock:
            reply = self.meter.handle(payload, int(time.monotonic() * 1000))
        return [reply] if reply else []


class WisunDriverPort:
    """The meter end through the firmware's own Wi-SUN module driver: a HEMS frame arrives
    at the emulated coordinator module, goes up the in-memory UART as ERXUDP to
    meter.broute.radio.wisun, through the authenticated B-route pump to the service, and the
    reply comes back down as SKSENDTO. The meter (`.meter`, a DemoMeter: the product's own
    composition) is built here with that Wi-SUN module fitted; meter_kw are its settings."""

    MASTER = b"emulated A-route master key"

    def __init__(self, lock=None, rbid=DEFAULT_RBID, password=DEFAULT_PASSWORD, **meter_kw):
        from demo_meter import DemoMeter
        from meter.broute.radio import auth
        from meter.broute.pump import ACTIVE
        from meter.broute.radio.wisun import S_LISTEN, WisunModule
        from hosthal.links import LoopUart

        self.lock = lock or threading.Lock()
        self.uart = LoopUart()
        self.coord = SkCoordinator()
        key = auth.module_key(self.MASTER, "wisun", self.coord.mac)
        self.module = WisunModule(self.uart, rbid, password, key=key)
        self.meter = DemoMeter(radio=self.module, broute_key=self.MASTER, **meter_kw)
        self.broute = self.meter.m.broute
        self.t = 0
        self._delivered = 0  # frames of coord.sent already handed to the dongle
        for _ in range(40):
            self._step()
        if self.broute.state != ACTIVE or self.module.state != S_LISTEN:
            raise RuntimeError("the Wi-SUN driver did not come up")

    def _step(self):
        with self.lock:
            self.broute.poll(self.meter.now(self.t))
        out = self.uart.take()
        if out:
            self.uart.feed(self.coord.feed(out))
        self.t += 10

    def joined(self, addr):
        self.uart.feed(self.coord.hems_join(addr))
        self._step()

    def left(self, addr):
        self.uart.feed(self.coord.hems_leave(addr))
        self._step()

    def exchange(self, payload, hems_addr=None):
        """Frames the meter sent since the last exchange (replies and notifications)."""
        before = len(self.coord.sent)
        self.uart.feed(self.coord.hems_send(hems_addr or self.hems_addr, payload))
        for _ in range(20):
            self._step()
            if len(self.coord.sent) > before and not self.module._txlen:
                break
        out = [p for _, p in self.coord.sent[self._delivered:]]
        self._delivered = len(self.coord.sent)
        return out


class SkDongle:
    """HEMS-side BP35C2 emulation. feed(bytes from host) -> bytes to host."""

    def __init__(self, meter_port, rbid=DEFAULT_RBID, password=DEFAULT_PASSWORD,
                 meter_mac="001D129012345678", own_mac="001D129087654321", channel=0x21,
                 pan_id=0x8888, version="1.2.10"):
        self.meter_port = meter_port
        self.rbid = rbid
        self.password = password
        self.meter_mac = meter_mac
        self.meter_addr = link_local(meter_mac)
        self.own_mac = own_mac
        self.own_addr = link_local(own_mac)
        self.channel = channel
        self.pan_id = pan_id
        self.version = version
        self.reader = _CommandReader(7)
        self.wopt = 1
        self.reg = {}
        self.set_rbid = None
        self.set_password = None
        self.session = False
        self.log = []  # commands seen (passwords masked)
        self.frames_in = 0
        self.frames_out = 0

    def feed(self, data):
        out = bytearray()
        for kind, line, payload in self.reader.feed(data):
            if kind == "SKSENDTO":
                out += self._sendto(line, payload)
            elif kind == "FAIL":
                out += b"FAIL ER06\r\n"
            else:
                out += self._command(line)
        return bytes(out)

    def _ok(self):
        return b"OK\r\n"

    def _command(self, line):
        words = line.decode(errors="replace").split()
        if not words:
            return b""
        cmd = words[0]
        self.log.append(cmd if cmd in ("SKSETPWD", "SKSETRBID") else " ".join(words))
        if cmd == "ROPT":
            return b"OK %02X\r" % self.wopt
        if cmd == "WOPT":
            if len(words) != 2 or words[1] not in ("00", "01"):
                return b"FAIL ER06\r\n"
            self.wopt = int(words[1], 16)
            return b"OK\r"
        if cmd == "SKVER":
            return b"EVER %s\r\nOK\r\n" % self.version.encode()
        if cmd == "SKAPPVER":
            return b"EAPPVER emu-bp35c2\r\nOK\r\n"
        if cmd == "SKINFO":
            return (b"EINFO %s %s %02X %04X 0\r\nOK\r\n"
                    % (self.own_addr.encode(), self.own_mac.encode(), self.channel,
                       self.pan_id))
        if cmd == "SKRESET":
            self.session = False
            self.reg.clear()
            return self._ok()
        if cmd == "SKSREG":
            if len(words) != 3:
                return b"FAIL ER06\r\n"
            self.reg[words[1]] = words[2]
            return self._ok()
        if cmd == "SKSETRBID":
            if len(words) != 2 or len(words[1]) != 32:
                return b"FAIL ER06\r\n"
            self.set_rbid = words[1]
            return self._ok()
        if cmd == "SKSETPWD":
            if len(words) != 3 or int(words[1], 16) != len(words[2]):
                return b"FAIL ER06\r\n"
            self.set_password = words[2]
            return self._ok()
        if cmd == "SKSCAN":
            if len(words) < 4 or words[1] != "2":
                return b"FAIL ER06\r\n"
            ev = b"%s 0" % self.meter_addr.encode()
            return (b"OK\r\nEVENT 20 " + ev + b"\r\nEPANDESC\r\n"
                    b"  Channel:%02X\r\n  Channel Page:09\r\n  Pan ID:%04X\r\n"
                    b"  Addr:%s\r\n  LQI:E1\r\n  Side:0\r\n  PairID:%s\r\n"
                    % (self.channel, self.pan_id, self.meter_mac.encode(),
                       self.rbid[-8:].encode())
                    + b"EVENT 22 " + ev + b"\r\n")
        if cmd == "SKLL64":
            if len(words) != 2 or len(words[1]) != 16:
                return b"FAIL ER06\r\n"
            return link_local(words[1]).encode() + b"\r\n"
        if cmd == "SKJOIN":
            if len(words) != 2:
                return b"FAIL ER06\r\n"
            if (words[1] != self.meter_addr or self.set_rbid != self.rbid
                    or self.set_password != self.password):
                return b"OK\r\nEVENT 24 %s 0\r\n" % self.meter_addr.encode()
            self.session = True
            if hasattr(self.meter_port, "joined"):
                self.meter_port.hems_addr = self.own_addr
                self.meter_port.joined(self.own_addr)
            return b"OK\r\nEVENT 25 %s 0\r\n" % self.meter_addr.encode()
        if cmd == "SKTERM":
            if not self.session:
                return b"OK\r\nEVENT 28 %s 0\r\n" % self.meter_addr.encode()
            self.session = False
            if hasattr(self.meter_port, "left"):
                self.meter_port.left(self.own_addr)
            return b"OK\r\nEVENT 27 %s 0\r\n" % self.meter_addr.encode()
        return b"FAIL ER04\r\n"

    def _sendto(self, header, payload):
        words = header.decode(errors="replace").split()
        self.log.append("SKSENDTO " + " ".join(words[1:]))
        if len(words) != 7 or words[2] != self.meter_addr or int(words[3], 16) != PORT:
            return b"FAIL ER05\r\n"
        if not self.session:
            return b"EVENT 21 %s 0 01\r\nOK\r\n" % self.meter_addr.encode()
        self.frames_in += 1
        out = bytearray(b"EVENT 21 %s 0 00\r\nOK\r\n" % self.meter_addr.encode())
        for reply in self.meter_port.exchange(payload):
            out += self.erxudp(reply)
        return bytes(out)

    def erxudp(self, payload):
        """One ERXUDP line from the meter to this dongle (hex payload, WOPT 01)."""
        self.frames_out += 1
        return (b"ERXUDP %s %s %04X %04X %s E1 1 0 %04X %s\r\n"
                % (self.meter_addr.encode(), self.own_addr.encode(), PORT, PORT,
                   self.meter_mac.encode(), len(payload), payload.hex().upper().encode()))


class SkCoordinator:
    """Meter-side module emulation (PAN coordinator) for the firmware's Wi-SUN driver.
    feed(bytes from the meter) -> bytes to the meter; hems_join()/hems_send() produce
    the lines a joining HEMS causes; frames the meter sent are in self.sent."""

    def __init__(self, mac="001D129012345678", version="1.5.2", channel=0x21,
                 pan_id=0x8888, ropt=1):
        self.mac = mac
        self.addr = link_local(mac)
        self.version = version
        self.channel = channel
        self.pan_id = pan_id
        self.ropt = ropt
        self.reader = _CommandReader(7)
        self.reg = {}
        self.rbid = None
        self.password = None
        self.started = False
        self.sent = []  # (destination, payload) the meter transmitted
        self.log = []
        self.fail_next = None  # command name to answer once with FAIL ER10
        self.silent = False  # True: answer nothing (a hung module)

    def feed(self, data):
        out = bytearray()
        for kind, line, payload in self.reader.feed(data):
            if self.silent:
                continue
            if kind == "SKSENDTO":
                words = line.decode().split()
                self.log.append("SKSENDTO")
                if not self.started or len(words) != 7:
                    out += b"FAIL ER10\r\n"
                    continue
                self.sent.append((words[2], payload))
                out += b"EVENT 21 %s 0 00\r\nOK\r\n" % words[2].encode()
            elif kind == "FAIL":
                out += b"FAIL ER06\r\n"
            else:
                out += self._command(line)
        return bytes(out)

    def _command(self, line):
        words = line.decode(errors="replace").split()
        if not words:
            return b""
        cmd = words[0]
        self.log.append(cmd)
        if self.fail_next == cmd:
            self.fail_next = None
            return b"FAIL ER10\r\n"
        if cmd == "SKRESET":
            self.started = False
            return b"OK\r\n"
        if cmd == "SKINFO":
            return (b"EINFO %s %s %02X %04X 0\r\nOK\r\n"
                    % (self.addr.encode(), self.mac.encode(), self.channel, self.pan_id))
        if cmd == "SKVER":
            return b"EVER %s\r\nOK\r\n" % self.version.encode()
        if cmd == "ROPT":
            return b"OK %02X\r\n" % self.ropt
        if cmd == "WOPT":
            self.ropt = int(words[1], 16)
            return b"OK\r\n"
        if cmd == "SKSREG" and len(words) == 3:
            self.reg[words[1]] = words[2]
            return b"OK\r\n"
        if cmd == "SKSETRBID" and len(words) == 2:
            self.rbid = words[1]
            return b"OK\r\n"
        if cmd == "SKSETPWD" and len(words) == 3:
            self.password = words[2]
            return b"OK\r\n"
        if cmd == "SKSTART":
            self.started = True
            return b"OK\r\n"
        return b"FAIL ER04\r\n"

    def hems_join(self, hems_addr):
        return b"EVENT 25 %s 0\r\n" % hems_addr.encode()

    def hems_leave(self, hems_addr):
        return b"EVENT 27 %s 0\r\n" % hems_addr.encode()

    def hems_send(self, hems_addr, payload, hems_mac="001D129087654321", dport=PORT):
        return (b"ERXUDP %s %s %04X %04X %s E1 1 0 %04X %s\r\n"
                % (hems_addr.encode(), self.addr.encode(), PORT, dport, hems_mac.encode(),
                   len(payload), payload.hex().upper().encode()))


class PtyEmulator:
    """Runs a SkDongle on a pseudo-terminal in a background thread. `path` is the device
    name to open with pyserial."""

    def __init__(self, dongle):
        self.dongle = dongle
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors = []

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                continue
            try:
                out = self.dongle.feed(data)
            except Exception as e:  # keep serving; the test inspects errors
                self.errors.append(repr(e))
                out = b"FAIL ER01\r\n"
            if out:
                os.write(self.master, out)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    from demo_meter import DemoMeter

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rbid", default=DEFAULT_RBID)
    ap.add_argument("--password", default=DEFAULT_PASSWORD)
    ap.add_argument("--power", type=int, default=1234, help="simulated load, W")
    ap.add_argument("--through-driver", action="store_true",
                    help="route frames through the firmware's Wi-SUN driver and B-route pump")
    args = ap.parse_args(argv)
    lock = threading.Lock()
    if args.through_driver:
        port = WisunDriverPort(lock, args.rbid, args.password, power_w=args.power)
        meter = port.meter
    else:
        meter = DemoMeter(power_w=args.power)
        port = DirectMeterPort(meter, lock)
    dongle = SkDongle(port, rbid=args.rbid, password=args.password)
    with PtyEmulator(dongle) as emu:
        print("Wi-SUN dongle emulator on %s (rbid %s)" % (emu.path, args.rbid), flush=True)
        try:
            while True:  # the meter runs in real time
                time.sleep(1)
                with lock:
                    meter.advance(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
