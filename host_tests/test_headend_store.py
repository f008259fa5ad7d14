# The head-end store (tools/headend_db.py) and its ingest (tools/headend_mqtt.Ingest), run on
# SQLite and on a real PostgreSQL server (host_tests/pg.py): the same schema, the same
# statements, duplicates discarded by key, rejections counted, gaps, CSV export.

import csv
import io
import threading

import headend_db
import headend_mqtt as H
from pg import pg_server, store_url  # noqa: F401  (pytest fixtures)
from test_headend_wire import (KEY, MID, doc_alarm, doc_birth, doc_event, doc_last_gasp,
                               doc_series, doc_snap, doc_will, topic)

MID2 = b"SIM00002"
KEY2 = bytes(range(1, 33))


class Clock:
    def __init__(self, t=14_000_000 * 60.0):
        self.t = t

    def __call__(self):
        return self.t


def make(url, clock=None):
    store = headend_db.open_store(url)
    store.register(MID, KEY, 0.0)
    store.register(MID2, KEY2, 0.0)
    lines = []
    return store, H.Ingest(store, clock or Clock(), lines.append), lines


def test_same_schema_on_sqlite_and_postgresql(tmp_path, pg_server):  # noqa: F811
    lite = headend_db.open_store(str(tmp_path / "a.db"))
    pg = headend_db.open_store(pg_server.create_db("schema"))

    def columns(store, table):
        if store.pg:
            return [r[0] for r in store.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", (table,))]
        return [r[1] for r in store.rows("PRAGMA table_info(%s)" % table)]

    for t in headend_db.TABLES:
        assert columns(lite, t) == columns(pg, t) != []
    assert "series_values" in headend_db.TABLES and "responses" in headend_db.TABLES


def test_series_duplicates_conflicts_and_not_held(store_url):  # noqa: F811
    store, ing, _ = make(store_url)
    p = doc_series(30, 466_000, [(100, 1), (110, 1), None])
    assert ing.handle(topic("series"), p) == "stored"
    assert ing.handle(topic("series"), p) == "duplicate"  # QoS 1 redelivery
    # a backfill batch overlapping the live one, one value different (a forced clock change)
    assert ing.handle(topic("series"), doc_series(30, 466_001, [(111, 1), (120, 2)],
                                                  flags=0x01)) == "stored"
    rows = store.series(MID, 30)
    assert [(r[0], r[1], r[2], r[8]) for r in rows] == [(466_000, 100, 1, 0),
                                                        (466_001, 110, 1, 0),
                                                        (466_002, 120, 2, 1)]
    c = store.counters()
    assert c["values_new"] == 3 and c["values_duplicate"] == 2 and c["values_conflict"] == 1
    assert c["values_not_held"] == 2 and c["stored"] == 2 and c["duplicate"] == 1
    assert store.table_count("series_values") == 3
    m = [x for x in store.meters() if x["meter"] == "SIM00001"][0]
    assert (m["e0"], m["e0_minute"], m["last_kind"]) == (120, 466_002 * 30, "series")


def test_events_alarms_births_snaps_will(store_url):  # noqa: F811
    store, ing, lines = make(store_url)
    ev = doc_event(10, [(62, 14_000_000, 1, 1, 0), (2, 14_000_001, 0, 30, 5)])
    assert ing.handle(topic("event"), ev) == "stored"
    assert ing.handle(topic("event"), doc_event(11, [(2, 14_000_001, 0, 30, 5),
                                                     (90, 14_000_002, 0, 1, 3)])) == "stored"
    assert store.table_count("events") == 3 and store.counter("events_duplicate") == 1
    assert ing.handle(topic("alarm"), doc_last_gasp(seq=4)) == "stored"
    assert ing.handle(topic("alarm"), doc_last_gasp(seq=4, repeat=1)) == "duplicate"
    assert ing.handle(topic("alarm"), doc_last_gasp(seq=4, flags=0x81)) == "stored"  # drill
    assert ing.handle(topic("alarm"), doc_alarm(code=62, seq=1)) == "stored"
    assert store.table_count("alarms") == 3
    assert any("LAST GASP seq 4" in x and not x.startswith("TEST") for x in lines)
    assert any(x.startswith("TEST ") for x in lines)
    assert any("ALARM code 62" in x and "(BREAKER_FAULT)" in x for x in lines)
    assert ing.handle(topic("snap"), doc_snap(e0=5000)) == "stored"
    assert ing.handle(topic("birth"), doc_birth(boot=1, jseq=100, alarms=8)) == "stored"
    assert ing.handle(topic("birth"), doc_birth(boot=1, jseq=100, alarms=8)) == "duplicate"
    assert ing.handle(topic("will"), doc_will()) == "stored"
    m = [x for x in store.meters() if x["meter"] == "SIM00001"][0]
    assert m["offline_hint"] == 1 and m["boot"] == 1 and m["alarm_register"] == 8
    assert m["e0"] == 5000 and m["rollback"] == 0
    assert any("offline?" in x for x in lines)


def test_birth_rollback_detection(store_url):  # noqa: F811
    store, ing, lines = make(store_url)
    ing.handle(topic("birth"), doc_birth(boot=1, conn=1, jseq=100))
    ing.handle(topic("birth"), doc_birth(boot=1, conn=2, jseq=150))
    ing.handle(topic("birth"), doc_birth(boot=2, conn=1, jseq=160))
    assert store.counter("rollback") == 0 and not lines
    ing.handle(topic("birth"), doc_birth(boot=3, conn=1, jseq=120))  # an older image
    assert store.counter("rollback") == 1 and "ROLLBACK" in lines[-1]
    ing.handle(topic("birth"), doc_birth(boot=4, conn=1, jseq=160, jseal=b"\x22" * 16))
    assert store.counter("rollback") == 2  # the same seq under another seal
    ing.handle(topic("birth"), doc_birth(boot=5, conn=1, jseq=170))
    assert store.counter("rollback") == 2
    assert store.one("SELECT SUM(rollback) FROM births")[0] == 2
    assert [x for x in store.meters() if x["meter"] == "SIM00001"][0]["rollback"] == 2


def test_a_late_copy_of_an_old_birth_is_no_rollback(store_url):  # noqa: F811
    # QoS 1 redelivers: a worker that dropped before its PUBACK gets the birth of connection 1
    # again after connection 2's birth was stored; an identical copy is a duplicate, not a
    # rolled-back flash (a rolled-back meter that reuses a (boot, conn) still raises it)
    store, ing, lines = make(store_url)
    first = doc_birth(boot=1, conn=1, jseq=100)
    assert ing.handle(topic("birth"), first) == "stored"
    assert ing.handle(topic("birth"), doc_birth(boot=1, conn=2, jseq=150)) == "stored"
    assert ing.handle(topic("birth"), first) == "duplicate"
    assert store.counter("rollback") == 0 and not lines
    # a rolled-back image booting again as boot 1 conn 1, later and from an older journal
    assert ing.handle(topic("birth"), doc_birth(boot=1, conn=1, jseq=90,
                                                minute=14_000_100)) == "duplicate"
    assert store.counter("rollback") == 1 and "ROLLBACK" in lines[-1]


def test_an_authentic_response_with_malformed_data_is_rejected_and_stores_nothing(
        store_url):  # noqa: F811
    # a POLL response (sealed under the meter's key) whose snap block is 3 bytes: counted
    # as rejected, nothing stored, no exception into paho's thread
    from test_headend_wire import doc_resp

    store, ing, _ = make(store_url)
    bad = doc_resp(0x20, 5, b"\x01" * 8, 0, b"\x00\x01\x02")
    assert ing.handle(topic("resp"), bad) == "rejected_E_LENGTH"
    assert store.table_count("responses") == 0 and store.table_count("snaps") == 0
    assert store.counter("rejected_E_LENGTH") == 1


def test_unauthenticated_malformed_and_misrouted_messages_are_counted(store_url):  # noqa: F811
    store, ing, _ = make(store_url)
    good = doc_series(30, 1, [(1, 1)])
    assert ing.handle(topic("series"), good[:-1] + bytes([good[-1] ^ 1])) == \
        "rejected_E_MAC"
    assert ing.handle(topic("series"), good[:30]) == "rejected_E_LENGTH"
    assert ing.handle(topic("series"), doc_series(30, 1, [(1, 1)], key=KEY2)) == \
        "rejected_E_MAC"
    # SIM00002 publishing SIM00001's message, or its own sealed message on SIM00001's topic
    assert ing.handle(topic("series", MID2), good) == "rejected_E_MAC"
    assert ing.handle(topic("series"), doc_series(30, 1, [(1, 1)], mid=MID2, key=KEY)) == \
        "rejected_E_METER_ID"
    assert ing.handle(topic("series", b"SIM00099"), good) == "rejected_E_UNKNOWN_METER"
    wrong_shard = topic("series").replace("/%s/" % topic("x").split("/")[2], "/zz/")
    assert ing.handle(wrong_shard, good) == "rejected_E_TOPIC"
    assert ing.handle(topic("snap"), good) == "rejected_E_TYPE"
    assert ing.handle(topic("bogus"), good) == "rejected_E_KIND"
    assert store.table_count("series_values") == 0
    c = store.counters()
    assert c["rejected_E_MAC"] == 3 and c["rejected_E_METER_ID"] == 1
    assert store.counters("SIM00001")["rejected_E_MAC"] == 2


def test_gaps_and_csv_export(store_url):  # noqa: F811
    store, ing, _ = make(store_url)
    store.execute("UPDATE meters SET coefficient = 10 WHERE meter = 'SIM00001'")
    ing.handle(topic("series"), doc_series(5, 100, [(1000, 0, 5, 6, 1012), (1010, 0, 5, 6,
                                                                             1009)]))
    ing.handle(topic("series"), doc_series(5, 104, [(1040, 0, 7, 6, 1000)]))
    ing.handle(topic("series"), doc_series(5, 106, [None]))  # the meter does not hold 106
    ing.handle(topic("series"), doc_series(5, 108, [(1080, 1, 7, 6, 1001)]))
    assert store.gaps(MID, 5, 100, 110) == [(102, 103), (105, 105), (107, 107),
                                            (109, 110)]
    assert H.find_gaps(store, "SIM00001", 5, 90, 108) == [(102, 103), (105, 105), (107, 107)]
    # a meter of which nothing arrived misses the whole window (a RANGE read is due)
    assert H.find_gaps(store, "SIM00002", 5, 90, 108) == [(90, 108)]
    f = io.StringIO()
    assert H.export_csv(store, "SIM00001", 5, f) == 4
    rows = list(csv.reader(io.StringIO(f.getvalue())))
    assert rows[0] == ["interval_end", "k", "fwd_kWh", "rev_kWh", "lag_kvarh", "lead_kvarh",
                       "volt_V", "received_at", "backfill"]
    # k 100 of the 5-minute series ends at wall minute 500 = 2000-01-01 08:20
    assert rows[1][:7] == ["2000-01-01T08:20:00", "100", "100.00", "0.00", "0.50", "0.60",
                           "101.2"]
    assert rows[4][:2] == ["2000-01-01T09:00:00", "108"] and rows[4][3] == "0.10"


def test_command_counters_are_unique_across_connections(store_url):  # noqa: F811
    make(store_url)[0].close()
    got = []
    lock = threading.Lock()

    def take():
        s = headend_db.open_store(store_url)
        mine = [s.next_counter(MID)[0] for _ in range(40)]
        with lock:
            got.extend(mine)
        s.close()

    ts = [threading.Thread(target=take) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(got) == list(range(1, 121))


def test_concurrent_ingest_keeps_one_row_per_key(store_url):  # noqa: F811
    make(store_url)[0].close()
    msgs = [doc_series(5, 1000 + 6 * i, [(i * 6 + j, 0, 1, 1, 1000) for j in range(6)])
            for i in range(20)]
    outcomes = []

    def work():
        s = headend_db.open_store(store_url)
        ing = H.Ingest(s, Clock(), None)
        for p in msgs:  # every worker gets every message: 2 of 3 copies are duplicates
            outcomes.append(ing.handle(topic("series"), p))
        s.close()

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s = headend_db.open_store(store_url)
    assert s.table_count("series_values") == 120
    assert outcomes.count("stored") == 20 and outcomes.count("duplicate") == 40
    assert s.counter("values_new") == 120 and s.counter("values_duplicate") == 240


def test_cli_register_meters_counters_gaps_and_export(store_url, tmp_path):  # noqa: F811
    out = []
    db = ["--db", store_url]
    assert H.main(db + ["register", "--meter", "SIM00001", "--key-hex", KEY.hex()],
                  out.append) == 0
    store = headend_db.open_store(store_url)
    assert store.key(MID) == KEY
    now_k = int(H.host_clock() // 60) // 30
    ing = H.Ingest(store, H.host_clock, None)
    ing.handle(topic("series"), doc_series(30, now_k - 10, [(1, 0)] * 3))  # k-10 .. k-8
    ing.handle(topic("series"), doc_series(30, now_k - 4, [(2, 0)]))
    ing.handle(topic("birth"), doc_birth(boot=3, alarms=0b1000))
    out.clear()
    assert H.main(db + ["meters"], out.append) == 0
    assert out[1].startswith("SIM00001") and "BREAKER_FAULT" in out[1]
    out.clear()
    assert H.main(db + ["gaps", "--series", "30", "--hours", "12"], out.append) == 0
    # the window ends before the newest interval (it may still be on its way)
    assert out == ["SIM00001 series 30: 6 missing in 2 range(s) %d-%d %d-%d" % (
        now_k - 7, now_k - 5, now_k - 3, now_k - 1)]
    f = tmp_path / "s.csv"
    out.clear()
    assert H.main(db + ["export", "--meter", "SIM00001", "--series", "30", "--out", str(f)],
                  out.append) == 0
    assert out == ["4 rows to %s" % f] and len(f.read_text().splitlines()) == 5
    out.clear()
    assert H.main(db + ["counters"], out.append) == 0
    assert any(x.startswith("values_new") and x.endswith(" 4") for x in out)


def test_pgserver_by_hand_stops_and_removes_its_server_on_sigterm():
    # `python tools/pgserver.py` (README): killed with SIGTERM it stops PostgreSQL and
    # removes its data directory, as on Ctrl-C (no orphan server holding the port)
    import os
    import re
    import signal
    import socket
    import subprocess
    import sys
    import time

    from paths import ROOT

    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "pgserver.py")],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"postgresql://\S+@127\.0\.0\.1:(\d+)/", line)
        assert m, line
        port = int(m.group(1))
        socket.create_connection(("127.0.0.1", port), 5).close()
        servers = []  # (pid, data dir): runuser and the postgres serving this port
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "port=%d" % port in argv and "-D" in argv:
                servers.append((int(pid), argv[argv.index("-D") + 1]))
        assert servers and len({d for _, d in servers}) == 1, servers
        data = servers[0][1]
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0

        def alive(pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                return False

        deadline = time.monotonic() + 15  # the postmaster's last children exiting
        while any(alive(pid) for pid, _ in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid, _ in servers), servers
        assert not os.path.exists(data)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # its own stop path, not an orphan server
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
