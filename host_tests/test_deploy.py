"""tools/deploy.py: --write-table erases exactly the new vfs and journal ranges (and otadata or
a moved nvs) before it writes the board's table at 0x8000; the copy removes stale code files
first; a board without PSRAM refuses the .mpy copy. Commands are checked as printed by the
dry run and as handed to a fake runner; nothing here talks to a board."""

import os
import re
import shlex
import subprocess
import sys

import pytest

import deploy
from paths import BOARD, ROOT, tool

BOARDS = sorted(d for d in os.listdir(BOARD)
                if os.path.isfile(os.path.join(BOARD, d, "board_config.py")))


class Runner:
    """Stands in for subprocess.run: mpy-cross really runs, esptool and mpremote are
    recorded (the listing command answers with `listing`)."""

    def __init__(self, listing=""):
        self.calls = []
        self.listing = listing
        self._real = subprocess.run

    def __call__(self, cmd, **kw):
        if os.path.basename(cmd[0]) == "mpy-cross":
            return self._real(cmd, **kw)
        self.calls.append(cmd)
        out = self.listing if "exec" in cmd else ""
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")


@pytest.fixture
def runner(monkeypatch):
    r = Runner()
    monkeypatch.setattr(deploy.subprocess, "run", r)
    return r


def printed_commands(out):
    return [shlex.split(ln) for ln in out.splitlines() if " -m esptool " in ln
            or ln.startswith(tool("mpremote"))]


def esptool_args(cmd):
    """The esptool subcommand and its arguments after the global options."""
    i = next(i for i, a in enumerate(cmd) if a in ("erase-region", "write-flash"))
    return cmd[i:]


@pytest.mark.parametrize("name", BOARDS)
def test_write_table_dry_run_prints_the_erases_then_the_table(name, runner, capsys, tmp_path):
    c = deploy.load_config(name)
    deploy.main(["--board", name, "--write-table", "--dry-run", "--port", "/dev/ttyUSB0",
                 "--out", str(tmp_path)])
    assert runner.calls == []  # a dry run runs nothing
    cmds = printed_commands(capsys.readouterr().out)
    rows = {p.name: p for p in deploy.read_table(os.path.join(BOARD, name, "partitions.csv"))}
    for cmd in cmds:
        assert cmd[1:3] == ["-m", "esptool"] and cmd[cmd.index("--chip") + 1] == c.CHIP
        assert cmd[cmd.index("--port") + 1] == "/dev/ttyUSB0"
    erases = [esptool_args(cmd) for cmd in cmds[:-1]]
    assert all(e[0] == "erase-region" for e in erases)
    regions = {(int(e[1], 16), int(e[2], 16)) for e in erases}
    vfs, journal = rows["vfs"], rows[c.JOURNAL_PARTITION]
    assert (vfs.offset, vfs.size) in regions
    assert (journal.offset, journal.size) in regions
    if "otadata" in rows:
        assert (rows["otadata"].offset, rows["otadata"].size) in regions
    for off, size in regions:  # the stock app (and phy_init) survive
        for p in rows.values():
            if p.type == 0x00 or p.name == "phy_init":
                assert off + size <= p.offset or p.offset + p.size <= off, p
    last = esptool_args(cmds[-1])
    assert last[0] == "write-flash" and last[-2] == "0x8000"
    assert "--after" not in cmds[-1]  # only the last command resets the board
    assert all(cmd[cmd.index("--after") + 1] == "no-reset" for cmd in cmds[:-1])
    with open(last[-1], "rb") as f:
        assert f.read() == deploy.table_binary(list(rows.values()))


def test_write_table_on_the_devkitc_erases_exactly_vfs_and_journal(capsys, tmp_path, runner):
    deploy.main(["--board", "esp32_devkitc", "--write-table", "--dry-run", "--out",
                 str(tmp_path)])
    cmds = printed_commands(capsys.readouterr().out)
    assert [esptool_args(c) for c in cmds[:-1]] == [
        ["erase-region", "0x200000", "0x1c0000"],  # vfs
        ["erase-region", "0x3c0000", "0x40000"],  # journal
    ]
    assert "--port" not in cmds[0]  # --port auto: esptool finds the board


def test_write_table_runs_the_printed_commands_in_order(runner, capsys, tmp_path):
    deploy.main(["--board", "esp32_s3_devkitc", "--write-table", "--port", "/dev/ttyACM0",
                 "--out", str(tmp_path)])
    assert runner.calls == printed_commands(capsys.readouterr().out)
    assert [esptool_args(c)[0] for c in runner.calls] == ["erase-region"] * 4 + ["write-flash"]


def test_write_table_refuses_a_broken_table(monkeypatch, runner, tmp_path):
    rows = deploy.read_table(os.path.join(BOARD, "esp32_devkitc", "partitions.csv"))
    rows[3].size += 0x1000  # vfs now runs into the journal
    monkeypatch.setattr(deploy, "read_table", lambda path: rows)
    with pytest.raises(SystemExit, match="vfs overlaps journal"):
        deploy.main(["--board", "esp32_devkitc", "--write-table", "--out", str(tmp_path)])
    assert runner.calls == []


@pytest.mark.parametrize("name", ["esp32_devkitc", "esp32_c3"])
def test_a_board_without_psram_refuses_the_mpy_copy(name, runner, tmp_path):
    assert deploy.load_config(name).PSRAM == 0
    with pytest.raises(SystemExit) as e:
        deploy.main(["--board", name, "--out", str(tmp_path)])
    msg = str(e.value)
    assert "no PSRAM" in msg and "docs/boards.md" in msg and "BOARD_DIR=" in msg
    assert "--config-only" in msg and "--force" in msg
    assert runner.calls == [] and not os.path.exists(tmp_path / name)  # nothing built


def test_force_copies_the_mpy_files_anyway(runner, tmp_path):
    deploy.main(["--board", "esp32_devkitc", "--force", "--out", str(tmp_path)])
    assert [tool("mpremote"), "fs", "cp", "-r", str(tmp_path / "esp32_devkitc") + "/.",
            ":"] in runner.calls


def test_the_mpy_copy_builds_on_a_board_with_psram(runner, capsys, tmp_path):
    deploy.main(["--board", "esp32_s3_devkitc", "--dry-run", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    puts = re.findall(r"^put (\S+)$", out, re.M)
    assert {"/main.py", "/board_config.mpy", "/meter/app.mpy",
            "/esp32hal/factory.mpy"} <= set(puts)
    assert not any(p.endswith(".py") and p != "/main.py" for p in puts)
    cmds = printed_commands(out)
    assert cmds[0][-2] == "exec" and "ilistdir" in cmds[0][-1]  # the listing comes first
    assert cmds[-2] == [tool("mpremote"), "fs", "cp", "-r",
                        str(tmp_path / "esp32_s3_devkitc") + "/.", ":"]
    assert cmds[-1][-1] == "reset"
    assert runner.calls == []


def test_stale_code_files_are_the_listed_ones_the_deployment_does_not_put():
    puts = ["/board_config.mpy", "/main.py", "/meter/app.mpy"]
    listed = ["/boot.py", "/main.py", "/meter/app.mpy", "/meter/app.py",  # .py beats .mpy
              "/meter/gone.mpy", "/lib/hmac.py", "/board_config.mpy"]
    assert deploy.stale(listed, puts) == ["/boot.py", "/lib/hmac.py", "/meter/app.py",
                                          "/meter/gone.mpy"]


def test_stale_files_are_removed_before_the_copy(monkeypatch, capsys, tmp_path):
    r = Runner(listing="/main.py\n/meter/app.mpy\n/meter/old.mpy\n/boot.py\n")
    monkeypatch.setattr(deploy.subprocess, "run", r)
    key = tmp_path / "meter.key"
    key.write_bytes(b"k" * 32)
    deploy.main(["--board", "esp32_s3_devkitc", "--port", "/dev/ttyACM0", "--key", str(key),
                 "--out", str(tmp_path)])
    verbs = [c[c.index("/dev/ttyACM0") + 1:][:2] for c in r.calls]
    assert verbs == [["exec", deploy.LIST_CODE], ["fs", "rm"], ["fs", "cp"], ["fs", "cp"],
                     ["reset"]]
    assert r.calls[1][-2:] == [":/boot.py", ":/meter/old.mpy"]
    assert r.calls[3][-2:] == [str(key), ":meter.key"]
    assert "remove /meter/old.mpy" in capsys.readouterr().out


def test_config_only_puts_the_config_and_removes_code_that_shadows_the_frozen_build(
        monkeypatch, tmp_path):
    r = Runner(listing="/main.py\n/meter/app.mpy\n/board_config.mpy\n")
    monkeypatch.setattr(deploy.subprocess, "run", r)
    secrets = tmp_path / "secrets.json"
    secrets.write_text("{}")
    deploy.main(["--board", "esp32_devkitc", "--config-only", "--secrets", str(secrets),
                 "--out", str(tmp_path)])
    assert r.calls[1][-3:] == ["rm", ":/main.py", ":/meter/app.mpy"]
    copied = os.listdir(tmp_path / "esp32_devkitc-config")
    assert copied == ["board_config.mpy"]
    assert r.calls[3][-2:] == [str(secrets), ":secrets.json"]


def test_the_listing_code_runs_on_micropython(tmp_path):
    for rel in ("main.py", "meter/app.mpy", "meter/deep/x.py", "secrets.json"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    code = deploy.LIST_CODE.replace('w("/")', 'w("%s/")' % tmp_path)
    out = subprocess.run([tool("micropython"), "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    got = sorted(ln[len(str(tmp_path)):] for ln in out.stdout.split())
    assert got == ["/main.py", "/meter/app.mpy", "/meter/deep/x.py"]


def test_esptool_is_pinned_and_knows_the_commands_used():
    with open(os.path.join(ROOT, "requirements-host.txt")) as f:
        assert re.search(r"^esptool==5\.", f.read(), re.M)
    for args in (["erase-region", "--help"], ["write-flash", "--help"], ["--help"]):
        r = subprocess.run([sys.executable, "-m", "esptool"] + args, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert "no-reset" in r.stdout and "--flash-size" in subprocess.run(
        [sys.executable, "-m", "esptool", "write-flash", "--help"], capture_output=True,
        text=True, timeout=60).stdout
