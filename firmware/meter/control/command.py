# Authenticated, replay-proof remote command envelope for current control (sans-IO).
#
# Request (big-endian; HMAC-SHA256 under the per-meter key over the epoch prefix and every
# byte before the HMAC):
#   0  u8   version (1)             1  u8  command code (CMD_*)
#   2  8    meter id (the 8-byte id of the board definition, as in Last Gasp messages)
#   10 u32  counter: strictly above the last consumed one (see below)
#   14 i32  expiry, wall minute: accepted only while the meter's wall minute < expiry and
#           expiry - wall minute <= MAX_EXPIRY_MIN (a captured request dies within an hour)
#   18 u8   n, argument length      19 n   arguments (below)
#   19+n    32-byte HMAC
# The epoch prefix is not sent: it is empty in epoch 0 (the envelope as it always was) and
# the 3 bytes EPOCH_TAG, epoch u16 in epoch 1..65535 (EPOCH_TAG is not VERSION, so no
# message of one epoch is a message of another).
# Response (same key, so the head-end can verify it; no epoch prefix):
#   0  u8   version (1)             1  u8  command code echoed (0 when unreadable)
#   2  8    meter id (this meter)   10 u32 counter echoed (0 when unreadable)
#   14 8    request tag: the first 8 bytes of the request's HMAC (binds the answer)
#   22 u8   status (meter.control.status)   23 u8  n, data length      24 n data
#   24+n    32-byte HMAC
# Commands, arguments -> response data:
#   CREATE   id u16, start i32, end i32 (wall min), limit u8 (A), flags u8 -> record
#   CONFIRM  id u16, digest 8 (from the read-back record)                 -> record
#   CANCEL   id u16                                                        -> record
#   LIST     -                                  -> every non-free record (21 bytes each)
#   READ     id u16                                                        -> record
#   CONTRACT limit u8                                                      -> status block
#   RESET    -  (remote reset of the breaker)                              -> status block
#   DRILL    limit u8, duration s u16  (drill on demand, starts now)       -> status block
#   REPORT   -                                  -> drill report (meter.control.drill, 114 bytes)
#   AUDIT    skip u8: newest entries after skipping `skip`     -> up to 8 audit entries
#   STATUS   -                                                             -> status block
#   ACK_TAMPER - (the head-end has seen the tamper evidence)              -> status block
#   REBASE   epoch u16 (the current epoch + 1)          -> epoch u16, counter u32 (REBASE_FMT)
#   0x20..0x29 (POLL, RANGE, EVENTS, PUSH, CLOCK, BROUTE_KEY, ALARM_FILTER, ALARM_CLEAR,
#            LG_TEST, COLLECTOR): the A-route's (docs/aroute.md), authenticated here like
#            every command, then executed by the extension (aroute.service.ARoute.command:
#            extension(code, args, now) -> (audit arg, status, data)); E_UNSUPPORTED on a
#            meter without an A-route. The extension reads the request's counter as
#            self.counter (BROUTE_KEY unwraps its key with it).
# Record: meter.control.reservations RECORD_FMT + digest (21 bytes).
# Audit entry: meter.control.audit
# ENTRY_FMT (17 bytes). Status block (10 bytes): contract u8, active limit u8, active id u16,
# breaker state u8, re-close count u8, flags u8 (bit0 clock fallback, bit1 relay fault,
# bit2 fault alarm, bit3 drill running, bit4 tamper evidence standing: not acknowledged),
# audit entries not persisted (flood guard, journal refusals) u8, counter epoch u16.
#
# Checks, in order; the first failing one is the status: size/version/argument length
# (E_MALFORMED), meter id (E_METER_ID), HMAC (E_MAC, also a TAMPER_AUTH event; a request
# that verifies under the previous epoch is E_REPLAY), counter (E_REPLAY, also TAMPER_AUTH),
# expiry (E_EXPIRED, or E_EXPIRY_RANGE when further than MAX_EXPIRY_MIN ahead; with an
# invalid wall clock expiry cannot be checked, so CREATE, CONFIRM, CONTRACT and ACK_TAMPER
# are refused with E_CLOCK and the rest rely on the counter), the counter made durable
# (E_NOT_DURABLE), command code (E_UNKNOWN_CMD), argument length (E_MALFORMED), then the
# operation's own checks (E_LIMIT, E_STATE ...; ACK_TAMPER: E_UNSUPPORTED on a meter without
# a tamper register, E_NOT_DURABLE when the register could not persist the acknowledgement:
# the evidence then comes back after a power cut, so the head-end acknowledges again).
#
# The counter is consumed by every AUTHENTIC request: one whose meter id, MAC, counter and
# expiry checks pass and whose counter the save handle made durable, whatever happens next
# (unknown code, E_CLOCK, the operation's own rejection or success). Its counter is
# persisted (KIND_COUNTER) BEFORE the operation runs, so an authentic request is acted on
# at most once: a request rejected now (a RESET while the breaker is closed: E_STATE) can
# never be replayed later when it would succeed (after an overload has locked the breaker),
# and a power cut between the counter and the operation's own state loses the operation
# (the head-end gets no answer and sends a new command) rather than leaving it replayable.
# A request failing an earlier check changes nothing but the audit log.
#
# Fail closed: when the save handle refuses the counter (handle.save() -> False: journal
# full because commands come faster than compaction, a flash fault, or a meter that keeps
# nothing: persist.NullSaver refuses everything) the request is answered E_NOT_DURABLE and
# NOTHING runs: the counter in RAM, limiter, table and drill are unchanged; only the audit
# entry is added (kept in RAM, counted unsaved, when the journal refuses it too). The
# request was never acted on, so the head-end may send it again (or a new one) once the
# journal has room: each request still acts at most once.
#
# Counter renewal (epochs): the replay state is (epoch u16, counter u32), persisted
# together. REBASE e (e = the current epoch + 1) sets the state to (e, 0) once (e, 0) is
# durable; from then on requests are signed with epoch e's prefix and counters restart at
# 1. REBASE's replay guard is its epoch, not the counter: it is accepted whatever the
# counter (so a counter that reached 2**32 - 1 does not lock the meter out), once per epoch
# (a REBASE naming the current epoch or an older one: E_REPLAY; skipping epochs: E_RANGE).
# A request of the previous epoch fails the MAC and is answered E_REPLAY (older epochs:
# E_MAC); so no request signed before a rebase can act after it. The head-end rebases well
# before the counter runs out (tools/headend.py: past REBASE_AT); 65535 rebases of 2**32
# counters each (then the key must be changed). A REBASE's checks after the HMAC: argument
# length (E_MALFORMED), epoch (E_REPLAY, E_RANGE), expiry as above, durable (E_NOT_DURABLE);
# it needs no valid clock (a meter without one must still be renewable).
#
# Every request is audited in RAM; authentic ones are always handed to the journal (an
# entry it refuses stays in RAM, counted in audit.unsaved). Rejections before
# the counter is consumed (junk, forgeries, replays, expired commands, E_NOT_DURABLE) are
# persisted (and MAC/replay failures raise TAMPER_AUTH) only FLOOD_MAX times per
# FLOOD_WINDOW_MS, so a flood of them cannot wear the flash or bury the event log; the
# status block reports how many were not persisted. The flood window restarts when
# FLOOD_WINDOW_MS has elapsed, or when the elapsed time reads negative (more than 2**29 ms
# since it began: meter.ticks).
#
# handle(request, now) takes meter.clock.Now; every event and audit entry is stamped with
# now.ev_minute. The offsets above are the REQ_* / RESP_* constants below (private, with a
# leading underscore, where only this module reads them). The tamper register comes in as
# two callables (meter.storage.store.Store's): ack_tamper(now) -> True when the evidence is
# acknowledged durably (also when none stood), False when that could not be persisted; and
# tamper_pending() -> True while evidence stands unacknowledged. None on a meter without.

from micropython import const
import struct

from meter import mac

from meter.control import status
from meter.errors import SettingError
from meter.ticks import elapsed_ms
from meter.events import TAMPER_AUTH
from meter.storage.persist import NULL_SAVER

VERSION = const(1)
CMD_CREATE = const(0x01)
CMD_CONFIRM = const(0x02)
CMD_CANCEL = const(0x03)
CMD_LIST = const(0x04)
CMD_READ = const(0x05)
CMD_CONTRACT = const(0x06)
CMD_RESET = const(0x07)
CMD_DRILL = const(0x08)
CMD_REPORT = const(0x09)
CMD_AUDIT = const(0x0A)
CMD_STATUS = const(0x0B)
CMD_ACK_TAMPER = const(0x0C)
CMD_REBASE = const(0x0D)
CMD_POLL = const(0x20)  # the A-route's codes (docs/aroute.md): executed by the extension
CMD_RANGE = const(0x21)
CMD_EVENTS = const(0x22)
CMD_PUSH = const(0x23)
CMD_CLOCK = const(0x24)
CMD_BROUTE_KEY = const(0x25)
CMD_ALARM_FILTER = const(0x26)
CMD_ALARM_CLEAR = const(0x27)
CMD_LG_TEST = const(0x28)
CMD_COLLECTOR = const(0x29)
CMD_NAMES = {CMD_CREATE: "create", CMD_CONFIRM: "confirm", CMD_CANCEL: "cancel",
             CMD_LIST: "list", CMD_READ: "read", CMD_CONTRACT: "contract",
             CMD_RESET: "reset", CMD_DRILL: "drill", CMD_REPORT: "report",
             CMD_AUDIT: "audit", CMD_STATUS: "status", CMD_ACK_TAMPER: "ack_tamper",
             CMD_REBASE: "rebase", CMD_POLL: "poll", CMD_RANGE: "range",
             CMD_EVENTS: "events", CMD_PUSH: "push", CMD_CLOCK: "clock",
             CMD_BROUTE_KEY: "broute_key", CMD_ALARM_FILTER: "alarm_filter",
             CMD_ALARM_CLEAR: "alarm_clear", CMD_LG_TEST: "lg_test",
             CMD_COLLECTOR: "collector"}
# Argument formats; the argument length must be exactly struct.calcsize of the format.
ARG_FMT = {CMD_CREATE: ">HiiBB", CMD_CONFIRM: ">H8s", CMD_CANCEL: ">H", CMD_LIST: "",
           CMD_READ: ">H", CMD_CONTRACT: ">B", CMD_RESET: "", CMD_DRILL: ">BH",
           CMD_REPORT: "", CMD_AUDIT: ">B", CMD_STATUS: "", CMD_ACK_TAMPER: "",
           CMD_REBASE: ">H", CMD_POLL: "", CMD_RANGE: ">BBii", CMD_EVENTS: ">IH",
           CMD_PUSH: ">BBHHBHB", CMD_CLOCK: ">iBB", CMD_BROUTE_KEY: ">16s",
           CMD_ALARM_FILTER: ">I", CMD_ALARM_CLEAR: ">I", CMD_LG_TEST: "",
           CMD_COLLECTOR: ">4sH"}
_NEEDS_CLOCK = (CMD_CREATE, CMD_CONFIRM, CMD_CONTRACT, CMD_ACK_TAMPER)
# A request's expiry may lie at most this far ahead (minutes): an hour covers the head-end's
# 10-minute default, a slow A-route with retries and some clock skew, and bounds how long a
# captured request stays usable.
MAX_EXPIRY_MIN = const(60)
EPOCH_TAG = const(0xEE)  # first byte of the epoch prefix (never VERSION)
REBASE_FMT = ">HI"  # REBASE response data: the new epoch, counter (0)

# Request layout: byte offsets of the header fields, then the arguments, then the HMAC.
REQ_HEAD_FMT = ">BB8sIiB"  # version, code, meter id, counter, expiry, n
_REQ_VERSION = const(0)
_REQ_CODE = const(1)
_REQ_METER_ID = const(2)
_REQ_COUNTER = const(10)
_REQ_EXPIRY = const(14)
_REQ_ARG_LEN = const(18)
REQ_HEAD = const(19)  # the arguments start here
# Response layout.
RESP_HEAD_FMT = ">BB8sI8sBB"  # version, code, meter id, counter, request tag, status, n
_RESP_VERSION = const(0)
_RESP_CODE = const(1)
_RESP_METER_ID = const(2)
_RESP_COUNTER = const(10)
_RESP_TAG = const(14)
RESP_STATUS = const(22)  # the status byte
RESP_DATA_LEN = const(23)
RESP_HEAD = const(24)  # the data start here
MAC_LEN = const(32)
TAG_LEN = const(8)  # the request tag: the first TAG_LEN bytes of the request's HMAC
MAX_ARGS = const(32)
# Status block: contract, active limit, active id, breaker state, re-closes, flags, unsaved,
# counter epoch
STATUS_FMT = ">BBHBBBBH"
_ST_FALLBACK = const(1)  # flags bit0: the clock is invalid, contract limit forced
_ST_FAULT = const(2)  # bit1: the relay feedback disagrees with the command
_ST_ALARM = const(4)  # bit2: the fault alarm is latched
_ST_DRILL = const(8)  # bit3: a drill is running
_ST_TAMPER = const(16)  # bit4: tamper evidence stands (not yet acknowledged)
AUDIT_PER_RESPONSE = const(8)
# The persisted replay state (KIND_COUNTER): version 2, epoch u16, counter u32. Version 1
# (version, counter: 5 bytes, written before epochs existed) restores as epoch 0.
_COUNTER_FMT = ">BHI"
_COUNTER_VERSION = const(2)
_COUNTER_LEN = const(7)
_COUNTER_V1_FMT = ">BI"
_COUNTER_V1_LEN = const(5)
FLOOD_WINDOW_MS = const(60_000)
FLOOD_MAX = const(4)


class CommandProcessor:
    def __init__(self, meter_id, key, limiter, audit, events, saver=None, ack_tamper=None,
                 tamper_pending=None):
        """saver: save-only handle of KIND_COUNTER (without one every command is refused
        E_NOT_DURABLE); ack_tamper(now) -> bool and tamper_pending() -> bool: the tamper
        register (see the header), or None. Raises SettingError E_METER_ID for a meter id
        that is not 8 bytes."""
        if len(meter_id) != 8:
            raise SettingError("E_METER_ID")
        self.meter_id = bytes(meter_id)
        self._mac = mac.Hmac(key)
        self.limiter = limiter
        self.table = limiter.table
        self.audit = audit
        self.events = events
        self.saver = saver or NULL_SAVER
        self.ack_tamper = ack_tamper
        self.tamper_pending = tamper_pending
        self.extension = None  # executes codes >= CMD_POLL (the A-route), or None
        self.epoch = 0  # counter epoch (REBASE); its prefix is part of every request MAC
        self.counter = 0  # counter of the last authentic request (consumed) in the epoch
        self._blob = bytearray(_COUNTER_LEN)  # the replay state being saved
        self._authentic = False  # the request being handled consumed its counter
        self._win_ms = 0  # flood guard window start (monotonic ms) ...
        self._win_n = 0  # ... and rejections in it

    def handle(self, req, now, dup=False):
        """Authenticate and execute one request at meter.clock.Now `now`; returns the
        encoded response. dup: the transport's redelivery flag (MQTT DUP): an authentic
        request with exactly the last consumed counter is then E_REDELIVERED (it ran
        before; the A-route answers such copies from its cache until a reboot empties it),
        audited, with no TAMPER_AUTH; without dup, or with an older counter, E_REPLAY."""
        code, counter, arg, st, data = self._process(req, now, dup)
        tag = bytes(req[-MAC_LEN:-MAC_LEN + TAG_LEN]) if len(req) >= REQ_HEAD + MAC_LEN \
            else bytes(TAG_LEN)
        keep = True
        if not self._authentic:
            keep = self._admit(now.ms)
            if keep and (st == status.E_MAC or st == status.E_REPLAY):
                self.events.stamp(TAMPER_AUTH, now, st, counter & 0x7FFFFFFF)
        self.audit.append(counter, now.ev_minute, now.second, code, st, arg, keep)
        return self._respond(code, counter, tag, st, data)

    def _admit(self, now_ms):
        """Flood guard: True for the first FLOOD_MAX rejections in each FLOOD_WINDOW_MS,
        which are persisted (and raise TAMPER_AUTH for MAC and replay failures); the rest
        are kept in RAM only and counted in audit.unsaved."""
        el = elapsed_ms(now_ms, self._win_ms)
        if self._win_n == 0 or el < 0 or el >= FLOOD_WINDOW_MS:
            self._win_ms = now_ms
            self._win_n = 0
        self._win_n += 1
        return self._win_n <= FLOOD_MAX

    def _process(self, req, now, dup=False):
        self._authentic = False
        n = len(req)
        code = req[_REQ_CODE] if n > _REQ_CODE else 0
        counter = 0
        if n >= REQ_HEAD:
            _, _, _, counter, _, _ = struct.unpack_from(REQ_HEAD_FMT, req, 0)
        if n < REQ_HEAD + MAC_LEN:
            return code, counter, 0, status.E_MALFORMED, b""
        ver, code, meter_id, counter, expiry, alen = struct.unpack_from(REQ_HEAD_FMT, req, 0)
        if ver != VERSION or alen > MAX_ARGS or n != REQ_HEAD + alen + MAC_LEN:
            return code, counter, 0, status.E_MALFORMED, b""
        if meter_id != self.meter_id:
            return code, counter, 0, status.E_METER_ID, b""
        body = memoryview(req)[:REQ_HEAD + alen]
        sig = memoryview(req)[REQ_HEAD + alen:]
        if not mac.equal(self._digest(self.epoch, body), sig):
            if self.epoch > 0 and mac.equal(self._digest(self.epoch - 1, body), sig):
                return code, counter, 0, status.E_REPLAY, b""  # signed before a rebase
            return code, counter, 0, status.E_MAC, b""
        if code == CMD_REBASE:
            return self._rebase(req, alen, counter, expiry, now)
        if counter <= self.counter:
            if dup and counter == self.counter and counter:
                return code, counter, 0, status.E_REDELIVERED, b""
            return code, counter, 0, status.E_REPLAY, b""
        st = self._check_expiry(expiry, now)
        if st != status.OK:
            return code, counter, 0, st, b""
        if not self._save(self.epoch, counter):
            return code, counter, 0, status.E_NOT_DURABLE, b""  # fail closed: nothing ran
        self._authentic = True  # consumed whatever follows (see the header)
        self.counter = counter
        fmt = ARG_FMT.get(code)
        if fmt is None:
            return code, counter, 0, status.E_UNKNOWN_CMD, b""
        if alen != (struct.calcsize(fmt) if fmt else 0):
            return code, counter, 0, status.E_MALFORMED, b""
        if not now.valid and code in _NEEDS_CLOCK:
            return code, counter, 0, status.E_CLOCK, b""
        args = struct.unpack_from(fmt, req, REQ_HEAD) if fmt else ()
        arg, st, data = self._execute(code, args, now)
        return code, counter, arg, st, data

    def _digest(self, epoch, body):
        """The request HMAC of `body` in `epoch` (the epoch prefix, then the body)."""
        if epoch == 0:
            return self._mac.digest(body)
        return self._mac.digest(struct.pack(">BH", EPOCH_TAG, epoch), body)

    def _check_expiry(self, expiry, now):
        """OK, E_EXPIRED or E_EXPIRY_RANGE; OK while the wall clock is invalid."""
        if not now.valid:
            return status.OK
        if now.minute >= expiry:
            return status.E_EXPIRED
        if expiry - now.minute > MAX_EXPIRY_MIN:
            return status.E_EXPIRY_RANGE
        return status.OK

    def _rebase(self, req, alen, counter, expiry, now):
        """REBASE (authentic under the current epoch): guarded by its epoch, not the
        counter; the new state (epoch, 0) is made durable before it is taken."""
        if alen != struct.calcsize(ARG_FMT[CMD_REBASE]):
            return CMD_REBASE, counter, 0, status.E_MALFORMED, b""
        epoch = struct.unpack_from(ARG_FMT[CMD_REBASE], req, REQ_HEAD)[0]
        if epoch <= self.epoch:
            return CMD_REBASE, counter, epoch, status.E_REPLAY, b""
        if epoch != self.epoch + 1:
            return CMD_REBASE, counter, epoch, status.E_RANGE, b""
        st = self._check_expiry(expiry, now)
        if st != status.OK:
            return CMD_REBASE, counter, epoch, st, b""
        if not self._save(epoch, 0):
            return CMD_REBASE, counter, epoch, status.E_NOT_DURABLE, b""
        self._authentic = True
        self.epoch = epoch
        self.counter = 0
        return CMD_REBASE, counter, epoch, status.OK, struct.pack(REBASE_FMT, epoch, 0)

    def _execute(self, code, args, now):
        if code >= CMD_POLL:
            if self.extension is None:
                return 0, status.E_UNSUPPORTED, b""
            return self.extension(code, args, now)
        t = self.table
        lim = self.limiter
        if code == CMD_CREATE:
            rid, start, end, limit, flags = args
            st = t.create(rid, start, end, limit, flags, now)
            return rid, st, (t.record(rid) if st == status.OK else b"")
        if code == CMD_CONFIRM:
            rid, quoted = args
            st = t.confirm(rid, quoted, now)
            return rid, st, (t.record(rid) if st == status.OK else b"")
        if code == CMD_CANCEL:
            rid = args[0]
            st = t.cancel(rid, now)
            return rid, st, (t.record(rid) if st == status.OK else b"")
        if code == CMD_LIST:
            return 0, status.OK, t.listing()
        if code == CMD_READ:
            rec = t.record(args[0])
            if rec is None:
                return args[0], status.E_UNKNOWN_ID, b""
            return args[0], status.OK, rec
        if code == CMD_CONTRACT:
            st = lim.set_contract(args[0], now)
            return args[0], st, (self.status_block() if st == status.OK else b"")
        if code == CMD_RESET:
            st = lim.reset(True, now)
            return 0, st, self.status_block()
        if code == CMD_DRILL:
            limit, duration_s = args
            st = lim.drill_now(limit, duration_s, now)
            return limit, st, (self.status_block() if st == status.OK else b"")
        if code == CMD_REPORT:
            return 0, status.OK, lim.drill.to_bytes()
        if code == CMD_AUDIT:
            return args[0], status.OK, self.audit_block(args[0])
        if code == CMD_ACK_TAMPER:
            if self.ack_tamper is None:
                return 0, status.E_UNSUPPORTED, b""
            if not self.ack_tamper(now):
                return 0, status.E_NOT_DURABLE, b""
            return 0, status.OK, self.status_block()
        return 0, status.OK, self.status_block()  # CMD_STATUS

    def status_block(self):
        lim = self.limiter
        tamper = self.tamper_pending is not None and self.tamper_pending()
        flags = (_ST_FALLBACK if lim.fallback else 0) | (_ST_FAULT if lim.breaker.fault else 0) \
            | (_ST_ALARM if lim.breaker.alarm else 0) | (_ST_DRILL if lim.drill.running else 0) \
            | (_ST_TAMPER if tamper else 0)
        return struct.pack(STATUS_FMT, lim.contract, lim.active_a, lim.active_id, lim.state,
                           lim.recloses, flags, min(self.audit.unsaved, 255), self.epoch)

    def audit_block(self, skip):
        """Up to AUDIT_PER_RESPONSE entries, newest first, after skipping `skip`. The
        entry of the command being answered is appended after this is built."""
        out = bytearray()
        for k in range(skip, skip + AUDIT_PER_RESPONSE):
            b = self.audit.entry_bytes(k)
            if b is None:
                break
            out += b
        return bytes(out)

    def _respond(self, code, counter, tag, st, data):
        head = struct.pack(RESP_HEAD_FMT, VERSION, code & 0xFF, self.meter_id,
                           counter & 0xFFFFFFFF, tag, st, len(data))
        return head + data + self._mac.digest(head, data)

    # -- persistence ---------------------------------------------------------------------

    def counter_bytes(self):
        """The persisted replay state (KIND_COUNTER): version, epoch, counter."""
        return struct.pack(_COUNTER_FMT, _COUNTER_VERSION, self.epoch, self.counter)

    def _save(self, epoch, counter):
        """Hand the replay state (epoch, counter) to the save handle; True when durable."""
        struct.pack_into(_COUNTER_FMT, self._blob, 0, _COUNTER_VERSION, epoch, counter)
        return self.saver.save(self._blob) is True

    def restore_counter(self, blob):
        """Restore the replay state at boot (version 2: epoch and counter; version 1: the
        counter of epoch 0); invalid blobs raise SettingError E_COUNTER_RECORD."""
        if len(blob) == _COUNTER_LEN and blob[0] == _COUNTER_VERSION:
            _, self.epoch, self.counter = struct.unpack(_COUNTER_FMT, blob)
        elif len(blob) == _COUNTER_V1_LEN and blob[0] == VERSION:
            self.epoch = 0
            self.counter = struct.unpack(_COUNTER_V1_FMT, blob)[1]
        else:
            raise SettingError("E_COUNTER_RECORD")
