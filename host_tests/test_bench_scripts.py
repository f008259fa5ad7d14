"""The unix-port benchmark scripts behind `make bench` run to the end and print their figures
(a benchmark that dies prints nothing useful: catch it here, not in a report). The long RAM
benchmark (mpy_ram.py, ~80 s) is marked slow."""

import os
import subprocess

import pytest

from paths import ROOT, build_mpy, micropython_env, tool

BENCH = os.path.join(ROOT, "tools", "bench")


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


def heap_of(path):
    with open(path) as f:
        first = f.readline()
    return first.split(":", 1)[1].split()[0] if first.startswith("# bench-heap:") else "160k"


@pytest.mark.parametrize("name", [
    "mpy_journal.py", "mpy_lastgasp.py", "mpy_mqtt.py", "mpy_tick.py",
    pytest.param("mpy_ram.py", marks=pytest.mark.slow)])
def test_a_bench_script_runs_and_prints_figures(name, mpy_dir):
    path = os.path.join(BENCH, name)
    r = subprocess.run([tool("micropython"), "-X", "heapsize=" + heap_of(path), path],
                       capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env=micropython_env(mpy_dir))
    figures = [ln for ln in r.stdout.splitlines() if ln.startswith("figure:")]
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(figures) >= 3 and all(len(f.split()) >= 3 for f in figures)
