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
    """A-route transport to the head-end: send(kind, payload) hands one sealed message
    over (published on up/<kind>) and returns True when the transport accepted it. On a
    board with a link and a key it is the A-route itself (meter.aroute.service.ARoute);
    hosthal.uplink.FakeUplink records in tests."""

    def connected(self):
        raise NotImplementedError

    def send(self, topic, payload):
        raise NotImplementedError


LINK_CLOSED = 0  # Link.status() values (plain ints: a const import and three more
LINK_OPENING = 1  # globals would grow this module's dict, which every part imports)
LINK_OPEN = 2


class Link:
    """A byte stream to the MQTT broker (the A-route): TCP, with TLS where configured.
    Nothing blocks. The contract (methods are not declared here, to keep this module's RAM
    small; board/esp32hal/tcplink.TcpLink implements it):
      open()          begin a connect (then the TLS handshake, if configured)
      status()        LINK_CLOSED / LINK_OPENING / LINK_OPEN; advances a pending connect or
                      handshake without waiting; a failed one goes to LINK_CLOSED
      write(buf)      bytes taken (0: would block); OSError when the link failed
      readinto(buf)   bytes read (0: nothing now, -1: the peer closed); OSError on failure
      close()         in any state"""


class RetainedMemory:
    """SIZE bytes that survive a crash, watchdog reset, panic and soft reset and are lost at
    power-on or brown-out (ESP32: RTC slow memory). write(buf) stores len(buf) == SIZE
    bytes, allocation-free (called every metering second); read(buf) fills buf with what was
    last written and returns True, or returns False when nothing was written since power-on
    (buf is then undefined)."""

    SIZE = 256

    def read(self, buf):
        raise NotImplementedError

    def write(self, buf):
        raise NotImplementedError


class BenchConsole:
    """The bench console's parts (meter.console, only with the CONSOLE setting): port, a Uart
    that is not the REPL's; bench, an input whose value() is 1 while the bench jumper is
    fitted (read once at boot: bench mode), or None; key, the bench key (bytes) accepted
    besides the per-meter key for privileged commands, or None."""

    def __init__(self, port, bench=None, key=None):
        self.port = port
        self.bench = bench
        self.key = key


class Board:
    """The board HAL a meter is built from (meter.assembly.build_meter): every part is an
    attribute, present on every board and None when the part is not fitted, so the core
    never probes. board/esp32hal (BoardHal) and board/hosthal (HostHal) fill it.

      clock        Clock                         required
      metrology    MetrologySource               required
      power_good   PowerGood or None             Last Gasp needs it (and a key)
      relay        Relay or None                 remote ampere control needs it
      flash        BlockDevice or None           the journal (needs a key too)
      radio        B-route RadioModule slot or None (meter.broute.radio.module)
      broute_key   bytes or None                 master key the radio module is checked with
      uplink       Uplink or None                A-route transport
      link         Link or None                  byte stream to the MQTT broker (A-route)
      collector    Datagram or None              UDP endpoint for the Last Gasp datagram
      meter_id     8 bytes or None               None: the config's METER_ID
      key          bytes or None                 per-meter secret (seals, commands, alarms)
      random       callable(n) -> n bytes        nonces (os.urandom); needed with a radio
      wdt          object with feed() or None    fed by the shell
      retained     RetainedMemory or None        registers' running copy across resets
      reset_kind   int                           why the chip last reset (board code)
      problems     list of E_ codes              parts that could not be created
      console      BenchConsole or None          the bench console's port, bench pin, key
    sleep() is the shell's: called when the Last Gasp machine says SLEEP, it returns when
    power-good is high again or the hold-up runs out. provision(meter_id, key) stores a new
    meter id and key for the next boot (the console's provision command): True when stored,
    False on a board that cannot."""

    def __init__(self, clock=None, metrology=None):
        self.clock = clock
        self.metrology = metrology
        self.power_good = None
        self.relay = None
        self.flash = None
        self.radio = None
        self.broute_key = None
        self.uplink = None
        self.link = None
        self.collector = None
        self.meter_id = None
        self.key = None
        self.random = None
        self.wdt = None
        self.retained = None
        self.reset_kind = 0
        self.problems = []
        self.console = None

    def sleep(self):
        pass

    def provision(self, meter_id, key):
        return False
