# Hardware-abstraction contracts: the only way the core and the shell reach hardware.
#
# Each class states one device class's contract. board/ implements them for ESP32,
# host_tests/hosthal/ implements them for CPython and the MicroPython unix port.
# Hardware objects come in through constructors; nothing here touches a peripheral.
#
# Units used across the firmware:
#   time:     monotonic ms (wraps, compare with ticks_diff); wall clock in whole minutes
#             since 2000-01-01 00:00 local standard time plus seconds 0..59 (both small ints)
#   energy:   W*s (J) for active, var*s for reactive, per sample
#   power:    W (signed: negative = reverse flow)
#   current:  mA            voltage: 0.1 V (dV)


class Clock:
    """Monotonic milliseconds and a settable wall clock with a validity flag."""

    def ticks_ms(self):
        raise NotImplementedError

    def wall_minute(self):
        """Whole minutes since 2000-01-01 00:00 local standard time. Samples the wall clock
        once and latches that sample's second for the next wall_second()."""
        raise NotImplementedError

    def wall_second(self):
        """Seconds 0..59 of the sample the latest wall_minute() took (never of a later
        one), so minute then second is one consistent reading (meter.clock.Now.read)."""
        raise NotImplementedError

    def wall_valid(self):
        """False until the clock has been set (by command or a time source)."""
        raise NotImplementedError

    def set_wall(self, minute, second):
        raise NotImplementedError


class BlockDevice:
    """NOR flash: erase_sector() sets a 4096-byte sector to 0xFF; program() may only clear
    bits and never crosses a 256-byte page; read() fills a buffer. Offsets are bytes."""

    SECTOR_SIZE = 4096
    PAGE_SIZE = 256

    def sector_count(self):
        raise NotImplementedError

    def read(self, offset, buf):
        raise NotImplementedError

    def program(self, offset, buf):
        raise NotImplementedError

    def erase_sector(self, sector):
        raise NotImplementedError


class PowerGood:
    """Digital power-good input from a comparator on the unregulated supply."""

    def value(self):
        """1 while mains is present, 0 when it has failed."""
        raise NotImplementedError

    def irq(self, handler):
        """Call handler(pin) on both edges (scheduled context: set flags only)."""
        raise NotImplementedError


class Relay:
    """Breaker/relay output with a sensed feedback contact."""

    def command(self, closed):
        raise NotImplementedError

    def commanded(self):
        raise NotImplementedError

    def sensed(self):
        """Feedback contact: True when the contacts are really closed."""
        raise NotImplementedError


class MetrologySource:
    """A metering front end. poll(sample) fills a core Sample with the energy accumulated
    since the previous poll and the instantaneous values; returns True when it has a
    fresh reading, False when none is available (the sample is then left untouched)."""

    def poll(self, sample, now_ms):
        raise NotImplementedError


class Uart:
    """Byte stream. readinto() returns the number of bytes read (0 when none are ready)."""

    def write(self, buf):
        raise NotImplementedError

    def readinto(self, buf):
        raise NotImplementedError

    def any(self):
        raise NotImplementedError


class Datagram:
    """A datagram endpoint (UDP socket, or a radio module's datagram service)."""

    def sendto(self, buf, addr):
        raise NotImplementedError

    def recvfrom_into(self, buf):
        """Returns (nbytes, addr), or (0, None) when nothing is pending."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


class Uplink:
    """A-route transport to the head-end (MQTT in a later issue). send() hands one
    message over and returns True when the transport accepted it."""

    def connected(self):
        raise NotImplementedError

    def send(self, topic, payload):
        raise NotImplementedError
