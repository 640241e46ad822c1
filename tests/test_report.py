"""``cowbench report``: every notebook executed on small runs, one self-contained HTML file,
figures beside it, opened in headless Chromium; and clean errors on bad input."""

from __future__ import annotations

import io
import json
import math
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from matplotlib.image import imread

from cowbench import report as report_mod
from cowbench.execute import NotebookFailed
from cowbench.records import records_frame
from cowbench.report import choose_notebook, make_report

from . import browser
from .conftest import needs_tools, small_dict
from .reportkit import host_series, sim_run, sim_sweep, synthetic_run
from .test_cli import assert_clean_error, cowbench, write

needs_chromium = pytest.mark.skipif(
    browser.CHROMIUM is None, reason="needs chromium (scripts/bootstrap.sh --test installs it)")
ROOT = Path(__file__).resolve().parents[1]


def assert_self_contained(html: Path, n_figures: int) -> str:
    text = html.read_text()
    # nothing fetched: no script, stylesheet or image from anywhere but the file itself
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "external resource"
    assert not re.search(r"@import\s+url\(\s*['\"]?https?:", text)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == n_figures
    assert "load_run" not in text and "figs.show" not in text  # code cells hidden
    return text


def figures_of(run: Path) -> list[str]:
    pngs = sorted(p.stem for p in (run / "figures").glob("*.png"))
    assert pngs == sorted(p.stem for p in (run / "figures").glob("*.svg"))
    return pngs


def no_leftovers(path: Path) -> None:
    assert not [p for p in path.iterdir() if p.name.startswith(".report-")]


def _timed_both_run(out: Path) -> Path:
    """A run with time series from both backends (made up: the skeleton records none yet)."""
    rows_p, rows_m = [], []
    for t in range(4):
        for e, rate in (("vm:a", 1.0), ("vm:b", 2.0)):
            v = (t + 1) * rate * 2**20
            rows_p.append(("sim", t * 30.0, e, "allocated_bytes", v, "B", 1, 0))
            rows_m.append(("real", t * 30.0, e, "allocated_bytes", v * 0.97, "B", 1, 0))
    rows_p.append(("sim", math.nan, "vm:a", "write_lat_mean_s", 0.002, "s", 1, 0))
    rows_m.append(("real", math.nan, "vm:a", "write_lat_mean_s", 0.0025, "s", 1, 0))
    return synthetic_run(out, records_frame(rows_p), records_frame(rows_m))


def test_validation_report_with_time_series(tmp_path):
    run = _timed_both_run(tmp_path / "run")
    assert choose_notebook(run) == "validation"
    outcome = make_report(run)
    assert outcome.notebook == "validation"
    names = figures_of(run)
    assert names == ["rel-error-by-metric", "scatter-allocated_bytes",
                     "scatter-write_lat_mean_s", "time-allocated_bytes"]
    text = assert_self_contained(run / "report.html", len(names))
    # measured = 0.97 x predicted for space, 2.5 ms against 2 ms for latency
    assert "predicted vs measured" in text and "+3.09%" in text and "-20.00%" in text
    nb = nbformat.read(run / "report.ipynb", as_version=4)
    assert nb.cells[1].metadata["tags"] == ["parameters"]
    no_leftovers(run)


def test_capacity_report_on_a_sweep_of_fleet_time_series(tmp_path):
    """Strategies side by side over time: two points, three hosts and two seeds each."""
    sweep = tmp_path / "fleet"
    synthetic_run(sweep / "overlay", host_series(hosts=3, seeds=2, days=6),
                  overrides={"strategy": {"kind": "qcow2_overlay"}})
    synthetic_run(sweep / "copy", host_series(hosts=3, seeds=2, days=6, growth_gib_per_day=3),
                  overrides={"strategy": {"kind": "full_copy"}})
    # the points differ in a strategy knob, so the default is the strategies notebook
    assert choose_notebook(sweep) == "strategies"
    proc = cowbench("report", str(sweep), "--notebook", "capacity", "--capacity", "20GiB")
    assert proc.returncode == 0, proc.stderr
    assert "report (capacity)" in proc.stdout
    names = figures_of(sweep)
    # host series only: no per-VM figure to draw
    assert names == ["host-disk-by-group", "host-disk-over-time", "time-to-full"]
    text = assert_self_contained(sweep / "report.html", len(names))
    assert "kind=full_copy" in text and "kind=qcow2_overlay" in text
    # full copies (3 GiB/day from 10 GiB) fill 20 GiB hosts within the 6 days: reached
    assert "reached" in text and "extrapolated" in text


def test_capacity_report_on_a_model_run_without_time_series(tmp_path):
    run = sim_run(tmp_path / "sim")
    outcome = make_report(run)
    assert outcome.notebook == "capacity"
    assert figures_of(run) == ["host-disk-by-group", "vm-disk-by-group"]
    text = (run / "report.html").read_text()
    assert "End-of-run figures only" in text and "--capacity SIZE" in text


def test_strategies_report_on_a_sweep(tmp_path):
    sweep = sim_sweep(tmp_path / "sweep")
    proc = cowbench("report", str(sweep))
    assert proc.returncode == 0, proc.stderr
    assert "report (strategies)" in proc.stdout
    names = figures_of(sweep)
    assert names == ["read_amplification", "space-amplification", "write_amplification"]
    text = assert_self_contained(sweep / "report.html", 3)
    assert "cluster-sizes" in text and "cs-4KiB" in text
    # the capacity notebook reads the same sweep, the strategies side by side
    make_report(sweep, notebook="capacity")
    text = (sweep / "report.html").read_text()
    assert "cluster_size=4KiB" in text and "cluster_size=1MiB" in text
    no_leftovers(sweep)


@needs_tools
@pytest.mark.real
def test_report_on_a_real_run(tmp_path, no_leaks):
    scenario = write(tmp_path, small_dict())
    run = tmp_path / "run"
    proc = cowbench("run", str(scenario), "--backend", "both", "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    proc = cowbench("report", str(run))
    assert proc.returncode == 0, proc.stderr
    comp = pd.read_csv(run / "comparison.csv")
    names = figures_of(run)
    assert names == sorted(["rel-error-by-metric",
                            *(f"scatter-{m}" for m in comp["metric"].unique())])
    assert_self_contained(run / "report.html", len(names))
    # the strategies notebook on a run with both backends shows the model's error too
    make_report(run, notebook="strategies")
    text = (run / "report.html").read_text()
    assert "How far the model is trusted" in text and "nothing to compare" not in text
    assert re.search(r"<td>allocated_bytes</td>\s*<td>\d+\.\d\d%</td>", text)
    # point 5: comparison and records as CSV beside the parquet files
    for name in ("predicted", "measured"):
        assert len(pd.read_csv(run / f"{name}.csv")) == len(
            pd.read_parquet(run / f"{name}.parquet"))


@needs_chromium
def test_the_report_renders_in_chromium_without_console_errors(tmp_path):
    run = _timed_both_run(tmp_path / "run")
    make_report(run)
    page = browser.open_page(run / "report.html")
    assert page.errors == []
    assert len(page.images) == len(figures_of(run)) == 4
    for complete, width, height, alt in page.images:
        assert complete and width == 2000 and height > 0 and alt  # decoded, print resolution
    shot = imread(io.BytesIO(page.screenshot_png))
    assert shot.shape[1] == 1200 and shot[..., :3].std() > 0.05  # not a blank page


@needs_chromium
def test_the_browser_check_does_see_errors(tmp_path):
    """The check above cannot pass on a page that fails: a broken page is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='data:image/png;base64,AAAA' alt='x'>"
                   "<script>console.error('boom'); undefined_call();</script></body></html>")
    page = browser.open_page(bad)
    assert any("boom" in e for e in page.errors)
    assert any("undefined_call" in e for e in page.errors)
    assert page.images[0][1] == 0  # the broken image has no width
    with pytest.raises(RuntimeError, match="ERR_FILE_NOT_FOUND"):
        browser.open_page(tmp_path / "ghost.html")


def test_a_failing_cell_fails_the_report_and_leaves_nothing(tmp_path, monkeypatch):
    run = sim_run(tmp_path / "r")
    books = tmp_path / "books"
    books.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("path = None\nfigures_dir = None\ncapacity_bytes = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise RuntimeError('cell went wrong')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, books / "capacity.ipynb")
    monkeypatch.setattr(report_mod, "NOTEBOOK_DIR", books)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(NotebookFailed, match=r"cell \[3\] \(raise RuntimeError\('cell went "
                       r"wrong'\)\) raised RuntimeError: cell went wrong"):
        make_report(run)
    assert sorted(p.name for p in run.iterdir()) == before


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(cowbench("report", str(tmp_path / "empty")), "neither a run directory")
    assert list((tmp_path / "empty").iterdir()) == []
    run = sim_run(tmp_path / "r")
    before = sorted(p.name for p in run.iterdir())
    assert_clean_error(cowbench("report", str(run), "--notebook", "pie"), "--notebook")
    assert_clean_error(cowbench("report", str(run), "--capacity", "lots"), "--capacity")
    assert_clean_error(cowbench("report", str(run), "--capacity", "0"), "--capacity")
    assert_clean_error(cowbench("report", str(tmp_path), "--notebook", "validation"),
                       "not a sweep")
    assert sorted(p.name for p in run.iterdir()) == before
    meta = json.loads((run / "run.json").read_text())
    meta["status"] = "failed"
    (run / "run.json").write_text(json.dumps(meta))
    assert_clean_error(cowbench("report", str(run)), "status is 'failed'")


def test_notebooks_have_a_parameters_cell_and_read_through_the_package():
    for name in report_mod.NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert {"path", "figures_dir", "capacity_bytes"} <= set(
            re.findall(r"^(\w+) =", tagged[0].source, re.M))
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        # notebooks read and plot; they never open result files or model themselves
        for banned in ("read_parquet", "read_csv", "open(", "import sim", "import real",
                       "simulate("):
            assert banned not in code, (name, banned)



def _connection_files() -> set[str]:
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.glob("tmp*.json") if "kernel_name" in p.read_text()}


def _kernels() -> set[str]:
    proc = subprocess.run(["pgrep", "-f", "ipykernel_launcher"], capture_output=True,
                          text=True, check=False)
    return set(proc.stdout.split())


@pytest.mark.parametrize("delay_s", [0.0, 1.0])  # as the kernel starts; as cells run
def test_sigterm_during_a_report_leaves_nothing_behind(tmp_path, delay_s):
    run = sim_run(tmp_path / "r")
    before, kernels = sorted(p.name for p in run.iterdir()), _kernels()
    files = _connection_files()
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "report", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _kernels() - kernels:  # the notebook's kernel is starting: mid-report
        assert time.monotonic() < deadline and proc.poll() is None, "no kernel started"
        time.sleep(0.02)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted by signal SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == before
    time.sleep(0.5)
    assert _kernels() - kernels == set(), "kernel left running"
    assert _connection_files() - files == set(), "kernel connection file left behind"
