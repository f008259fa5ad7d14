"""Every .py that goes on the board compiles with the real mpy-cross."""

import os
import subprocess

import pytest

from paths import ROOT, tool


def board_files():
    out = []
    for top in ("firmware", "board"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            out += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in files
                    if f.endswith(".py")]
    return sorted(out)


def test_board_file_list_is_not_empty():
    files = board_files()
    assert "firmware/main.py" in files
    assert any(f.startswith("firmware/meter/") for f in files)


@pytest.mark.parametrize("path", board_files())
def test_compiles_with_mpy_cross(path, tmp_path):
    out = tmp_path / "out.mpy"
    r = subprocess.run([tool("mpy-cross"), "-o", str(out), os.path.join(ROOT, path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
