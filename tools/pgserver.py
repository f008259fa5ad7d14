"""Start a throwaway PostgreSQL server for tests and labs: initdb into a temporary directory,
pg_ctl start on a free loopback port, createdb; stop and remove it afterwards.

    with PgServer() as pg:             # pg.url: postgresql://USER@127.0.0.1:PORT/headend
        store = headend_db.open_store(pg.url)

    python tools/pgserver.py           # start one, print its URL, stop on Ctrl-C

The server binaries refuse to run as root: when run as root, the data directory is handed to
an unprivileged user (`postgres` if it exists, else `nobody`) and every binary runs through
`runuser -u USER --`. Trust authentication on 127.0.0.1 only, no Unix socket, fsync off
(a throwaway server: quick initdb, quick tests).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/14/bin")


def bin_dir():
    for d in BIN_DIRS:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _run_user():
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise RuntimeError("running as root and no unprivileged user for PostgreSQL")


class PgServer:
    def __init__(self, dbname="headend", port=None):
        self.dbname = dbname
        self.port = port or free_port()
        self.bin = bin_dir()
        self.user = _run_user()
        self.tmp = None
        self.data = None
        self.dbuser = self.user.pw_name if self.user else pwd.getpwuid(os.getuid()).pw_name

    @property
    def url(self):
        return self.url_of(self.dbname)

    def _cmd(self, name, *args):
        cmd = [os.path.join(self.bin, name)] + list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user.pw_name, "--"] + cmd
        return cmd

    def _run(self, name, *args):
        r = subprocess.run(self._cmd(name, *args), capture_output=True, text=True,
                           cwd=self.tmp)
        if r.returncode:
            raise RuntimeError("%s failed: %s%s" % (name, r.stdout, r.stderr))
        return r

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="pgserver-")
        self.data = os.path.join(self.tmp, "data")
        if self.user:
            os.chown(self.tmp, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", self.dbuser, "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200 -c shared_buffers=32MB" % self.port)
        self._run("pg_ctl", "-D", self.data, "-o", opts, "-l",
                  os.path.join(self.tmp, "log"), "-w", "-t", "30", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.dbuser,
                  self.dbname)
        return self

    def url_of(self, dbname):
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.dbuser, self.port, dbname)

    def create_db(self, dbname):
        """Another empty database on this server (a test's own); returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % dbname.replace('"', ''))
        return self.url_of(dbname)

    def stop(self):
        if self.data and os.path.exists(self.data):
            subprocess.run(self._cmd("pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                                     "stop"), capture_output=True, cwd=self.tmp)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = self.data = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:  # also Ctrl-C or SIGTERM in the middle of the start
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    # a SIGTERM (kill, a supervisor) stops and removes the server as Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    t = time.monotonic()
    try:
        with PgServer() as pg:
            print("PostgreSQL up in %.1f s: %s (Ctrl-C stops and removes it)"
                  % (time.monotonic() - t, pg.url), flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
