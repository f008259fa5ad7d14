# scenario-heap: 1m
# The fake ESP32 (host_tests/mpy/fakes) behaves like the chip where the board code depends on
# it: NOR flash partitions, RTC memory and pad hold per reset kind, Pin construction, IRQs
# scheduled, a watchdog that resets on a missed feed, PCNT, a non-blocking UART.

import boardsim
import espchip

boardsim.setup(METROLOGY="simulated", RADIO="none")
import esp32  # noqa: E402
import machine  # noqa: E402
import time  # noqa: E402
from machine import Pin  # noqa: E402


def resets(kind):
    try:
        machine._reset(kind)
    except espchip.Reset as r:
        return r.args[0]


# Partition: find by label, 4096-byte blocks, NOR programming, explicit erase
p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")[0]
assert p.ioctl(5, 0) == 4096 and p.ioctl(4, 0) == 64
buf = bytearray(4)
p.readblocks(3, buf, 100)
assert buf == b"\xff\xff\xff\xff"  # erased
p.writeblocks(3, b"\x0f\xf0\x00\xff", 100)
p.writeblocks(3, b"\xf3\x3f\xff\xff", 100)  # programming only clears bits
p.readblocks(3, buf, 100)
assert buf == b"\x03\x30\x00\xff", buf
p.ioctl(6, 3)
p.readblocks(3, buf, 100)
assert buf == b"\xff\xff\xff\xff"
p.writeblocks(5, bytearray(4096))  # no offset: the block is erased first
try:
    p.readblocks(64, buf)
    raise AssertionError("read past the partition")
except OSError:
    pass
assert esp32.Partition.find(esp32.Partition.TYPE_DATA, label="nope") == []

# RTC memory: 2 KB, kept by every reset but power-on/EN (stale after a brown-out)
rtc = machine.RTC()
try:
    rtc.memory(bytes(2049))
    raise AssertionError("2049 bytes accepted")
except ValueError:
    pass
for kind, kept in (("soft", True), ("wdt", True), ("hard", True), ("deepsleep", True),
                   ("brownout", True), ("en_pin", False), ("power_on", False)):
    rtc.memory(b"MTR")
    assert resets(kind) == kind
    assert (rtc.memory() == b"MTR") == kept, kind
assert machine.reset_cause() == machine.PWRON_RESET

# RTC time: set by datetime(), read by time.time(); lost at power-on only
rtc.datetime((2024, 8, 22, 3, 7, 5, 42, 0))
assert time.gmtime(time.time())[:6] == (2024, 8, 22, 7, 5, 42)
assert rtc.datetime()[:7] == (2024, 8, 22, 3, 7, 5, 42)
resets("wdt")
assert time.gmtime()[:6] == (2024, 8, 22, 7, 5, 42)
resets("brownout")
assert time.gmtime()[:3] == (2000, 1, 1)

# Pins: OUT without value drives the register (0 after a chip reset) unless held
espchip.ext_pull[25] = 0
espchip.watch(25)
Pin(25, Pin.OUT, value=1)
resets("wdt")
assert espchip.level(25) == 0  # not held: the pad floats to its pull at the reset
Pin(25, Pin.OUT)
assert espchip.level(25) == 0
q = Pin(25, Pin.OUT, value=1, hold=True)
q.value(0)  # the register only: a held pad does not follow
assert espchip.level(25) == 1
q.init(value=1, hold=True)
resets("wdt")
assert espchip.level(25) == 1 and Pin(25, Pin.IN).value() == 1  # held through the reset
resets("power_on")
assert espchip.level(25) == 0  # power-on releases every hold
try:
    Pin(34, Pin.OUT)
    raise AssertionError("GPIO34 as output")
except ValueError:
    pass

# IRQs: both edges by default, run through micropython.schedule; none after a reset
seen = []
espchip.drive(4, 0)
pg = Pin(4, Pin.IN)
pg.irq(lambda pin: seen.append(pin.value()))
espchip.drive(4, 1)
for _ in range(3):
    pass
espchip.drive(4, 0)
for _ in range(3):
    pass
assert seen == [1, 0], seen
resets("soft")  # a soft reset removes the handlers (machine_pins_deinit)
espchip.drive(4, 1)
for _ in range(3):
    pass
assert seen == [1, 0], seen

# Watchdog: a missed feed resets; a soft reset does not stop it
machine.WDT(timeout=2000)
espchip.advance(1500)
machine.WDT(timeout=2000).feed()
espchip.advance(1500)
assert resets("soft") == "soft" and espchip.wdt_timeout == 2000
try:
    espchip.advance(2500)
    raise AssertionError("watchdog did not bite")
except espchip.Reset as r:
    assert r.args[0] == "wdt" and machine.reset_cause() == machine.WDT_RESET
assert espchip.wdt_timeout is None  # a chip reset stops it: the firmware starts it again

# PCNT counts falling edges of its pin; value(0) reads and clears
c = machine.Counter(0, Pin(27, Pin.IN, Pin.PULL_UP), edge=machine.Counter.FALLING)
for _ in range(3):
    espchip.drive(27, 0)
    espchip.drive(27, 1)
assert c.value(0) == 3 and c.value() == 0

# UART: nothing waiting reads None (timeout 0); rxbuf bounds what is kept
u = machine.UART(2, 115200, tx=17, rx=16, rxbuf=256, timeout=0)
b = bytearray(8)
assert u.readinto(b) is None and u.any() == 0
u._feed(bytes(500))
assert u.any() == 256 + 128 and u.overruns == 500 - 384
print("PASS")
