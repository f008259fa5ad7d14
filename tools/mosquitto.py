"""A private Mosquitto broker on a free loopback port, for tests, benchmarks and the fleet
simulation (never the system service): a config file in its own directory, started as a
child process, ready once it accepts TCP connections, stopped by its pid.

    from mosquitto import Mosquitto
    with Mosquitto() as broker:          # broker.host, broker.port
        ...
        broker.restart()                 # same port; the persistence file is kept

    python tools/mosquitto.py serve --port-file F   # foreground, until SIGTERM/SIGINT
"""

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"


def make_certs(directory, host="localhost"):
    """A throw-away CA and a server certificate for `host` (and 127.0.0.1), made with the
    openssl command: {"ca_pem", "ca_der", "cert", "key"} paths in directory."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=meter-test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=" + host)
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n" % host)
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    run("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der")
    j = os.path.join
    return {"ca_pem": j(directory, "ca.pem"), "ca_der": j(directory, "ca.der"),
            "cert": j(directory, "server.pem"), "key": j(directory, "server.key")}


def free_port(host=HOST):
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker. persistence: keep sessions and queued messages in mosquitto.db across
    restart(); max_queued: the broker's per-client offline queue (messages); keepalive
    limits and the like go in `extra` (config lines)."""

    def __init__(self, port=None, persistence=True, max_queued=1000, extra="", workdir=None,
                 ready_timeout_s=10.0, tls=None):
        self.host = HOST
        self.port = port or free_port()
        self.persistence = persistence
        self.max_queued = max_queued
        self.extra = extra
        self.ready_timeout_s = ready_timeout_s
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="mosquitto-")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log = os.path.join(self.dir, "mosquitto.log")
        self.proc = None
        self.starts = 0
        self.tls = tls  # make_certs() result: the listener speaks TLS only

    def _write_conf(self):
        lines = [
            "listener %d %s" % (self.port, self.host),
            "allow_anonymous true",
            "max_queued_messages %d" % self.max_queued,
            "log_dest stderr",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "persistence %s" % ("true" if self.persistence else "false"),
            "persistence_location %s/" % self.dir,
            "autosave_interval 0",  # the database is written at an orderly stop
        ]
        owner = None
        if os.geteuid() == 0:
            # root: mosquitto drops to its own user, which must own the directory
            try:
                pw = pwd.getpwnam("mosquitto")
                owner = (pw.pw_uid, pw.pw_gid)
                os.chown(self.dir, *owner)
            except KeyError:
                lines.append("user root")
        if self.tls:
            for key, name in (("ca_pem", "cafile"), ("cert", "certfile"), ("key", "keyfile")):
                dest = os.path.join(self.dir, "tls-" + os.path.basename(self.tls[key]))
                shutil.copyfile(self.tls[key], dest)
                if owner:
                    os.chown(dest, *owner)
                lines.append("%s %s" % (name, dest))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + self.extra + "\n")

    def start(self):
        if self.proc is not None:
            return self
        self._write_conf()
        logf = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            logf.close()
        self.starts += 1
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError("mosquitto exited at start:\n" + self.log_text()[-2000:])
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self  # (a TLS listener accepts TCP too; it logs a failed handshake)
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("mosquitto not accepting on %d:\n%s"
                                       % (self.port, self.log_text()[-2000:]))
                time.sleep(0.02)

    def stop(self):
        """SIGTERM (the broker saves its database and ends), SIGKILL if it lingers."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def kill(self):
        """SIGKILL: a broker crash (nothing saved since the last autosave)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def restart(self, down_s=0.0):
        self.stop()
        if down_s:
            time.sleep(down_s)
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _serve(args):
    broker = Mosquitto(port=args.port, persistence=not args.no_persistence)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    try:
        broker.start()
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % broker.port)
            os.replace(tmp, args.port_file)
        else:
            print(broker.port, flush=True)
        while not stop and broker.running():
            time.sleep(0.1)
    finally:
        broker.cleanup()


def main(argv=None):
    p = argparse.ArgumentParser(description="a private Mosquitto on a free loopback port")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run a broker until SIGTERM/SIGINT")
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--port-file", help="write the port here once the broker accepts")
    s.add_argument("--no-persistence", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        _serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
