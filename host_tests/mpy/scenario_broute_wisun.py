# B-route over a Wi-SUN module under the MicroPython unix port: the SKSTACK IP driver
# (meter.broute.radio.wisun) set up through a scripted module on an in-memory UART, module
# authentication, a HEMS Get answered through SKSENDTO, and the bytes allocated per frame
# on this path (printed; the UART path formats one command line per reply).

import gc

from meter import caltime
from meter.clock import Now
from meter.broute.echonet.meter_object import SmartMeter
from meter.broute.echonet.node import Identity, NodeProfile
from meter.broute.echonet.service import Service
from meter.metering.intervals import IntervalCapture
from meter.metering.samples import Metering, Sample
from meter.broute.radio import auth
from meter.broute.pump import ACTIVE, BRoute
from meter.broute.radio.wisun import S_LISTEN, S_UP, WisunModule
from meter.metering.registers import EnergyRegisters, FWD
from hosthal.links import LoopUart

MAC = "001D129012345678"
HEMS = b"FE80:0000:0000:0000:021D:1290:8765:4321"
MASTER = b"master"

regs = EnergyRegisters()
cap = IntervalCapture(regs)
met = Metering(regs, cap)
ident = Identity()
meter = SmartMeter(regs, met, cap, ident)
svc = Service(NodeProfile(ident, (meter,)), (meter,))
s = Sample()
s.dt_ms = 1000
s.e_fwd = 36_000  # one count (10 Wh) per second
s.p_w = 500
minute = caltime.to_minute(2026, 11, 28, 10, 0)
for sec in range(1, 11):
    met.tick(s, Now(0, minute, sec, True))
assert regs.count[FWD] == 10

uart = LoopUart()
module = WisunModule(uart, "00112233445566778899AABBCCDDEEFF", "0123456789AB",
                     key=auth.module_key(MASTER, "wisun", MAC))
counter = [0]


def nonce(n):
    counter[0] += 1
    return bytes([counter[0]] * n)


br = BRoute(svc, auth.ModuleAuth(MASTER), lambda: module, nonce)
sent = []


def answer(cmd):
    """What the scripted module says to one command line."""
    if cmd.startswith(b"SKINFO"):
        return (b"EINFO FE80:0000:0000:0000:021D:1290:1234:5678 " + MAC.encode()
                + b" 21 8888 0\r\nOK\r\n")
    if cmd.startswith(b"SKVER"):
        return b"EVER 1.5.2\r\nOK\r\n"
    if cmd.startswith(b"ROPT"):
        return b"OK 01\r\n"
    return b"OK\r\n"


spent = [0]
NOW = Now()


def step(t):
    a = gc.mem_alloc()
    br.poll(NOW.at(t, minute, 11, True))
    spent[0] += gc.mem_alloc() - a
    out = uart.take()
    if not out:
        return
    if out.startswith(b"SKSENDTO"):
        sent.append(out)
        uart.feed(b"EVENT 21 " + HEMS + b" 0 00\r\nOK\r\n")
        return
    for line in out.split(b"\r\n"):
        if line:
            uart.feed(answer(line))


t = 0
for _ in range(40):
    step(t)
    t += 10
assert br.state == ACTIVE and module.state == S_LISTEN, (br.state, module.state)
uart.feed(b"EVENT 25 " + HEMS + b" 0\r\n")
step(t)
assert module.state == S_UP

GET = bytes.fromhex("1081000105ff0102880162 01 e0 00".replace(" ", ""))
ERX = (b"ERXUDP " + HEMS + b" FE80:0000:0000:0000:021D:1290:1234:5678 0E1A 0E1A "
       b"001D129087654321 E1 1 0 000E " + GET.hex().upper().encode() + b"\r\n")
uart.feed(ERX)
step(t)
step(t + 10)
assert len(sent) == 2, sent
head = b"SKSENDTO 1 " + HEMS + b" 0E1A 2 0 0012 "
inf = sent[0][len(head):]  # instance list announced to the HEMS when it joined
assert inf[10] == 0x73 and inf[12] == 0xD5, inf
assert sent[1].startswith(head), sent[1]
reply = sent[1][len(head):]
assert reply[10] == 0x72 and reply[12] == 0xE0 and reply[17] == 10, reply

# bytes allocated inside BRoute.poll per HEMS frame on the whole UART path (parser,
# driver, pump, service; includes the LoopUart stub's slicing)
rounds = 20
gc.collect()
gc.disable()
spent[0] = 0
for i in range(rounds):
    uart.feed(ERX)
    step(t)
    step(t)
gc.enable()
per = spent[0] // rounds
print("Wi-SUN path: %d frames sent, %d bytes allocated per frame in BRoute.poll "
      "(host LoopUart stub slicing included)"
      % (len(sent), per))
assert len(sent) == 2 + rounds
print("PASS")
