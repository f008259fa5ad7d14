"""The whole tree passes ruff (pycodestyle and pyflakes rules, line length 99)."""

import subprocess

from paths import ROOT, tool


def test_ruff_finds_nothing():
    r = subprocess.run([tool("ruff"), "check", "--output-format", "concise", "firmware",
                        "board", "host_tests", "tools"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
