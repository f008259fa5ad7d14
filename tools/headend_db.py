"""The head-end's store: one schema, on SQLite (a file path, the default) or PostgreSQL.

    store = open_store("headend.db")                      # SQLite
    store = open_store("postgresql://user@127.0.0.1:5433/headend")   # psycopg 3

The schema text below is the same on both (TEXT, BIGINT, INTEGER, DOUBLE PRECISION; keys,
seals and payload data as lowercase hex text, so no BLOB/BYTEA difference), and so is every
statement: written with `?` placeholders, turned into `%s` for psycopg. Inserts are
idempotent, INSERT ... ON CONFLICT DO NOTHING keyed by the natural key of each record
(series_values: meter, series, interval number k; events: meter, seq; ...), so the same
message stored twice, by one worker or by two workers sharing a subscription, keeps one row
and the second copy is counted as a duplicate. Counters are upserts
(value = value + excluded.value), safe from several processes at once.

Times (received_at, last_contact ...) are the head-end clock in seconds since 2000-01-01
local standard time, the convention of the meter's wall minutes (minute m starts at
m * 60), so a value's latency is received_at - its boundary minute * 60. A simulation passes
its virtual clock.

Each HeadEndStore holds one connection: a worker thread or process opens its own.
"""

import contextlib
import sqlite3
import threading

SCHEMA = """
CREATE TABLE IF NOT EXISTS meters (
    meter TEXT PRIMARY KEY,
    key_hex TEXT NOT NULL,
    registered_at DOUBLE PRECISION,
    last_contact DOUBLE PRECISION,
    last_kind TEXT,
    offline_hint INTEGER NOT NULL DEFAULT 0,
    alarm_register BIGINT,
    last_birth_at DOUBLE PRECISION,
    boot BIGINT,
    conn INTEGER,
    fw INTEGER,
    journal_seq BIGINT,
    journal_seal TEXT,
    rollback INTEGER NOT NULL DEFAULT 0,
    unit INTEGER,
    coefficient BIGINT,
    e0 BIGINT,
    e3 BIGINT,
    e0_minute BIGINT,
    cmd_counter BIGINT NOT NULL DEFAULT 0,
    cmd_epoch INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS series_values (
    meter TEXT NOT NULL,
    series INTEGER NOT NULL,
    k BIGINT NOT NULL,
    fwd BIGINT,
    rev BIGINT,
    lag BIGINT,
    lead BIGINT,
    volt BIGINT,
    unit INTEGER,
    received_at DOUBLE PRECISION NOT NULL,
    backfill INTEGER NOT NULL,
    PRIMARY KEY (meter, series, k)
);
CREATE TABLE IF NOT EXISTS not_held (
    meter TEXT NOT NULL,
    series INTEGER NOT NULL,
    k BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (meter, series, k)
);
CREATE TABLE IF NOT EXISTS events (
    meter TEXT NOT NULL,
    seq BIGINT NOT NULL,
    code INTEGER NOT NULL,
    minute BIGINT NOT NULL,
    second INTEGER NOT NULL,
    a BIGINT NOT NULL,
    b BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    backfill INTEGER NOT NULL,
    PRIMARY KEY (meter, seq)
);
CREATE TABLE IF NOT EXISTS alarms (
    meter TEXT NOT NULL,
    alarm TEXT NOT NULL,
    seq BIGINT NOT NULL,
    code INTEGER,
    flags INTEGER,
    minute BIGINT,
    second INTEGER,
    test INTEGER NOT NULL,
    detail TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (meter, alarm, seq)
);
CREATE TABLE IF NOT EXISTS births (
    meter TEXT NOT NULL,
    boot BIGINT NOT NULL,
    conn INTEGER NOT NULL,
    fw INTEGER NOT NULL,
    reset_kind INTEGER NOT NULL,
    state INTEGER NOT NULL,
    journal_seq BIGINT NOT NULL,
    journal_seal TEXT NOT NULL,
    minute BIGINT NOT NULL,
    second INTEGER NOT NULL,
    unit INTEGER NOT NULL,
    coefficient BIGINT NOT NULL,
    alarm_register BIGINT NOT NULL,
    next30 BIGINT NOT NULL,
    next5 BIGINT NOT NULL,
    next1 BIGINT NOT NULL,
    next_event BIGINT NOT NULL,
    rollback INTEGER NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (meter, boot, conn)
);
CREATE TABLE IF NOT EXISTS snaps (
    meter TEXT NOT NULL,
    minute BIGINT NOT NULL,
    second INTEGER NOT NULL,
    e0 BIGINT NOT NULL,
    e3 BIGINT NOT NULL,
    power_w BIGINT NOT NULL,
    voltage_dv BIGINT NOT NULL,
    breaker INTEGER NOT NULL,
    alarm_register BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (meter, minute, second)
);
CREATE TABLE IF NOT EXISTS responses (
    meter TEXT NOT NULL,
    counter BIGINT NOT NULL,
    tag TEXT NOT NULL,
    status INTEGER NOT NULL,
    code INTEGER NOT NULL,
    data TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (meter, counter, tag, status)
);
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
"""
TABLES = ("meters", "series_values", "not_held", "events", "alarms", "births", "snaps",
          "responses", "counters")
SERIES_COLS = ("fwd", "rev", "lag", "lead", "volt")
ALL = "*"  # counters scope of the head-end as a whole


def is_postgres(url):
    return url.startswith("postgresql://") or url.startswith("postgres://")


def open_store(url):
    """A HeadEndStore on SQLite (a path, or ":memory:") or PostgreSQL (a postgresql:// URL)."""
    return HeadEndStore(url)


class HeadEndStore:
    def __init__(self, url):
        self.url = url
        self.pg = is_postgres(url)
        self._lock = threading.RLock()  # one connection, usable from paho's thread and ours
        if self.pg:
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            self._ph = "%s"
        else:
            self._conn = sqlite3.connect(url, timeout=30, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._ph = "?"
        with self._lock:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)

    def close(self):
        self._conn.close()

    @contextlib.contextmanager
    def batch(self):
        """One transaction around several statements (one uplink message's rows)."""
        with self._lock:
            if self.pg:
                with self._conn.transaction():
                    yield self
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- plumbing
    def _sql(self, sql):
        return sql.replace("?", self._ph) if self.pg else sql

    def execute(self, sql, args=()):
        """Run one statement; returns (rowcount, rows) (rows for a SELECT/RETURNING)."""
        with self._lock:
            cur = self._conn.execute(self._sql(sql), args)
            rows = cur.fetchall() if cur.description else []
            return cur.rowcount, rows

    def rows(self, sql, args=()):
        return self.execute(sql, args)[1]

    def one(self, sql, args=()):
        r = self.rows(sql, args)
        return r[0] if r else None

    def insert(self, table, cols, values):
        """INSERT ... ON CONFLICT DO NOTHING; True when the row was new."""
        sql = "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING" % (
            table, ", ".join(cols), ", ".join("?" * len(cols)))
        return self.execute(sql, values)[0] == 1

    def count(self, name, n=1, scope=ALL):
        if n:
            self.execute("INSERT INTO counters (scope, name, value) VALUES (?, ?, ?) "
                         "ON CONFLICT (scope, name) DO UPDATE SET value = "
                         "counters.value + excluded.value", (scope, name, n))

    def counter(self, name, scope=ALL):
        r = self.one("SELECT value FROM counters WHERE scope = ? AND name = ?", (scope, name))
        return r[0] if r else 0

    def counters(self, scope=ALL):
        return dict(self.rows("SELECT name, value FROM counters WHERE scope = ? ORDER BY name",
                              (scope,)))

    # ---- meters and keys
    def register(self, meter, key, now=None):
        """Register a meter (8-character id) and its key; re-registering replaces the key."""
        meter = _mid(meter)
        if len(meter) != 8:
            raise ValueError("meter id must be 8 characters")
        self.execute("INSERT INTO meters (meter, key_hex, registered_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (meter) DO UPDATE SET key_hex = excluded.key_hex",
                     (meter, bytes(key).hex(), now))

    def keys(self):
        return {m.encode(): bytes.fromhex(k) for m, k in
                self.rows("SELECT meter, key_hex FROM meters")}

    def key(self, meter):
        r = self.one("SELECT key_hex FROM meters WHERE meter = ?", (_mid(meter),))
        return bytes.fromhex(r[0]) if r else None

    def meter_ids(self):
        return [r[0] for r in self.rows("SELECT meter FROM meters ORDER BY meter")]

    def meters(self):
        cols = ("meter", "last_contact", "last_kind", "offline_hint", "alarm_register",
                "last_birth_at", "boot", "conn", "fw", "journal_seq", "rollback", "unit",
                "coefficient", "e0", "e3", "e0_minute", "cmd_counter", "cmd_epoch")
        return [dict(zip(cols, r)) for r in self.rows(
            "SELECT %s FROM meters ORDER BY meter" % ", ".join(cols))]

    def contact(self, meter, kind, now, offline=False):
        self.execute("UPDATE meters SET last_contact = ?, last_kind = ?, offline_hint = ? "
                     "WHERE meter = ?", (now, kind, 1 if offline else 0, _mid(meter)))

    def next_counter(self, meter):
        """Reserve the next command counter of a meter (atomic across workers); returns
        (counter, epoch)."""
        m = _mid(meter)
        r = self.one("UPDATE meters SET cmd_counter = cmd_counter + 1 WHERE meter = ? "
                     "RETURNING cmd_counter, cmd_epoch", (m,))
        if r is None:
            raise KeyError(m)
        return r[0], r[1]

    def set_counter(self, meter, counter, epoch):
        self.execute("UPDATE meters SET cmd_counter = ?, cmd_epoch = ? WHERE meter = ?",
                     (counter, epoch, _mid(meter)))

    # ---- uplink records
    def add_series(self, meter, series, k, cols, unit, now, backfill):
        """One interval value; returns "new", "duplicate" or "conflict" (another value under
        the same key: the first is kept)."""
        m = _mid(meter)
        vals = tuple(cols) + (None,) * (5 - len(cols))
        if self.insert("series_values", ("meter", "series", "k") + SERIES_COLS +
                       ("unit", "received_at", "backfill"),
                       (m, series, k) + vals + (unit, now, 1 if backfill else 0)):
            self.execute("DELETE FROM not_held WHERE meter = ? AND series = ? AND k = ?",
                         (m, series, k))
            return "new"
        old = self.one("SELECT fwd, rev, lag, lead, volt FROM series_values WHERE meter = ? "
                       "AND series = ? AND k = ?", (m, series, k))
        return "duplicate" if old is not None and tuple(old) == vals else "conflict"

    def add_not_held(self, meter, series, k, now):
        """A value the meter reported with every column -1: it does not hold it."""
        return self.insert("not_held", ("meter", "series", "k", "received_at"),
                           (_mid(meter), series, k, now))

    def add_event(self, meter, entry, now, backfill):
        seq, code, minute, second, a, b = entry
        return self.insert("events", ("meter", "seq", "code", "minute", "second", "a", "b",
                                      "received_at", "backfill"),
                           (_mid(meter), seq, code, minute, second, a, b, now,
                            1 if backfill else 0))

    def add_alarm(self, meter, alarm, seq, code, flags, minute, second, test, detail, now):
        return self.insert("alarms", ("meter", "alarm", "seq", "code", "flags", "minute",
                                      "second", "test", "detail", "received_at"),
                           (_mid(meter), alarm, seq, code, flags, minute, second,
                            1 if test else 0, detail, now))

    def add_birth(self, meter, b, now):
        """Store a birth; returns (new, rollback): rollback when its journal seq is below
        one seen before for this meter, or equal with another seal."""
        m = _mid(meter)
        seal = bytes(b["journal_seal"]).hex()
        same = self.rows("SELECT journal_seq, journal_seal, minute, second FROM births WHERE "
                         "meter = ? AND boot = ? AND conn = ?", (m, b["boot"], b["conn"]))
        if same and tuple(same[0]) == (b["journal_seq"], seal, b["minute"], b["second"]):
            return False, False  # a copy of a stored birth (QoS 1 redelivery, a replay)
        seen = self.rows("SELECT journal_seq, journal_seal FROM births WHERE meter = ? AND "
                         "journal_seq >= ? AND NOT (boot = ? AND conn = ?)",
                         (m, b["journal_seq"], b["boot"], b["conn"]))
        rollback = any(s > b["journal_seq"] or (s == b["journal_seq"] and sl != seal)
                       for s, sl in seen)
        new = self.insert("births", ("meter", "boot", "conn", "fw", "reset_kind", "state",
                                     "journal_seq", "journal_seal", "minute", "second",
                                     "unit", "coefficient", "alarm_register", "next30",
                                     "next5", "next1", "next_event", "rollback",
                                     "received_at"),
                          (m, b["boot"], b["conn"], b["fw"], b["reset_kind"], b["state"],
                           b["journal_seq"], seal, b["minute"], b["second"], b["unit"],
                           b["coefficient"], b["alarm_register"], b["next30"], b["next5"],
                           b["next1"], b["next_event"], 1 if rollback else 0, now))
        if new:
            self.execute("UPDATE meters SET last_birth_at = ?, boot = ?, conn = ?, fw = ?, "
                         "journal_seq = ?, journal_seal = ?, alarm_register = ?, unit = ?, "
                         "coefficient = ?, rollback = rollback + ? WHERE meter = ?",
                         (now, b["boot"], b["conn"], b["fw"], b["journal_seq"], seal,
                          b["alarm_register"], b["unit"], b["coefficient"],
                          1 if rollback else 0, m))
        return new, rollback

    def add_snap(self, meter, s, now):
        m = _mid(meter)
        new = self.insert("snaps", ("meter", "minute", "second", "e0", "e3", "power_w",
                                    "voltage_dv", "breaker", "alarm_register", "received_at"),
                          (m, s["minute"], s["second"], s["e0"], s["e3"], s["power_w"],
                           s["voltage_dv"], s["breaker"], s["alarm_register"], now))
        self.execute("UPDATE meters SET e0 = ?, e3 = ?, e0_minute = ?, alarm_register = ? "
                     "WHERE meter = ? AND (e0_minute IS NULL OR e0_minute <= ?)",
                     (s["e0"], s["e3"], s["minute"], s["alarm_register"], m, s["minute"]))
        return new

    def set_alarm_register(self, meter, register):
        self.execute("UPDATE meters SET alarm_register = ? WHERE meter = ?",
                     (register, _mid(meter)))

    def latest_reading(self, meter, minute, e0, e3):
        """Last readings from a 30-minute value: kept when newer than the one stored."""
        self.execute("UPDATE meters SET e0 = ?, e3 = ?, e0_minute = ? WHERE meter = ? AND "
                     "(e0_minute IS NULL OR e0_minute < ?)", (e0, e3, minute, _mid(meter),
                                                              minute))

    def add_response(self, meter, r, now):
        return self.insert("responses", ("meter", "counter", "tag", "status", "code", "data",
                                         "received_at"),
                           (_mid(meter), r["counter"], bytes(r["tag"]).hex(), r["status"],
                            r["code"], bytes(r["data"]).hex(), now))

    def response(self, meter, counter, tag):
        r = self.one("SELECT status, code, data, received_at FROM responses WHERE meter = ? "
                     "AND counter = ? AND tag = ?", (_mid(meter), counter, bytes(tag).hex()))
        if r is None:
            return None
        return {"status": r[0], "code": r[1], "data": bytes.fromhex(r[2]), "received_at": r[3]}

    # ---- queries
    def series(self, meter, series, k_from=None, k_to=None):
        """[(k, fwd, rev, lag, lead, volt, unit, received_at, backfill)] ordered by k."""
        sql = ("SELECT k, fwd, rev, lag, lead, volt, unit, received_at, backfill FROM "
               "series_values WHERE meter = ? AND series = ?")
        args = [_mid(meter), series]
        if k_from is not None:
            sql += " AND k >= ?"
            args.append(k_from)
        if k_to is not None:
            sql += " AND k <= ?"
            args.append(k_to)
        return self.rows(sql + " ORDER BY k", args)

    def gaps(self, meter, series, k_from, k_to):
        """Missing interval numbers in [k_from, k_to] as inclusive ranges [(a, b)], values
        the meter reported not holding excluded (a range read cannot bring them)."""
        m = _mid(meter)
        have = {r[0] for r in self.rows(
            "SELECT k FROM series_values WHERE meter = ? AND series = ? AND k BETWEEN ? AND ?",
            (m, series, k_from, k_to))}
        have |= {r[0] for r in self.rows(
            "SELECT k FROM not_held WHERE meter = ? AND series = ? AND k BETWEEN ? AND ?",
            (m, series, k_from, k_to))}
        out = []
        start = None
        for k in range(k_from, k_to + 1):
            if k in have:
                if start is not None:
                    out.append((start, k - 1))
                    start = None
            elif start is None:
                start = k
        if start is not None:
            out.append((start, k_to))
        return out

    def table_count(self, table, where="", args=()):
        return self.one("SELECT COUNT(*) FROM %s %s" % (table, where), args)[0]

    def drop_all(self):
        """Delete every row (tests reuse one PostgreSQL database)."""
        for t in TABLES:
            self.execute("DELETE FROM %s" % t)


def _mid(meter):
    return meter.decode("ascii") if isinstance(meter, (bytes, bytearray)) else str(meter)
