"""``cowbench report``: every notebook executed on small runs, one self-contained HTML file,
figures beside it, opened in headless Chromium; and clean errors on bad input."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
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
from cowbench.units import format_bytes

from . import browser
from .conftest import needs_tools, small_dict
from .reportkit import GiB, host_series, sim_run, sim_sweep, synthetic_run
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
    # no Python warning printed into the report (a log axis given a 0 once put matplotlib's
    # "Attempt to set non-positive xlim" there)
    assert not re.search(r"\w+Warning: ", text), re.search(r".{80}\w+Warning: .{80}", text)
    return text


def figures_of(run: Path) -> list[str]:
    figures = run / "report" / "figures"
    pngs = sorted(p.stem for p in figures.glob("*.png"))
    assert pngs == sorted(p.stem for p in figures.glob("*.svg"))
    return pngs


def html_of(run: Path) -> Path:
    """The report inside the folder it owns; the copy at the top is the same page."""
    html = run / "report" / "report.html"
    assert (run / "report.html").read_bytes() == html.read_bytes()
    return html


def read_tables(html: str) -> list[pd.DataFrame]:
    """The ``<table>``s of ``html`` as frames (stdlib parser: pandas' read_html needs lxml)."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: list[list[list[str]]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "table":
                self.tables.append([])
            elif tag == "tr" and self.tables:
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.tables[-1][-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(html)
    return [pd.DataFrame(t[1:], columns=t[0]) for t in parser.tables if t]


def outputs_html(run: Path) -> str:
    """Every HTML output (the tables) of the executed notebook."""
    nb = nbformat.read(run / "report" / "report.ipynb", as_version=4)
    return "".join(o.get("data", {}).get("text/html", "") for c in nb.cells
                   for o in c.get("outputs", []))


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


@pytest.fixture(scope="module")
def validation_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The validation report of a run with time series, made once (each report starts a
    notebook kernel): one test reads it, another opens it in Chromium."""
    run = _timed_both_run(tmp_path_factory.mktemp("validation") / "run")
    assert choose_notebook(run) == "validation"
    assert make_report(run).notebook == "validation"
    return run


@pytest.mark.slow
def test_validation_report_with_time_series(validation_run):
    run = validation_run
    names = figures_of(run)
    assert names == ["rel-error-by-metric", "scatter-allocated_bytes",
                     "scatter-write_lat_mean_s", "time-allocated_bytes"]
    text = assert_self_contained(html_of(run), len(names))
    # measured = 0.97 x predicted for space, 2.5 ms against 2 ms for latency
    assert "predicted vs measured" in text and "+3.09%" in text and "-20.00%" in text
    assert "One panel per kind of entity" in text and "no figure over time" not in text
    nb = nbformat.read(run / "report" / "report.ipynb", as_version=4)
    assert nb.cells[1].metadata["tags"] == ["parameters"]
    no_leftovers(run)


@pytest.mark.slow
def test_capacity_report_on_a_sweep_of_fleet_time_series(tmp_path):
    """Strategies side by side over time: hosts sampled over time make it a capacity report
    whatever the knobs; --capacity replaces every group's capacity."""
    sweep = tmp_path / "fleet"
    synthetic_run(sweep / "overlay", host_series(hosts=3, seeds=2, days=6),
                  overrides={"strategy": {"kind": "qcow2_overlay"}})
    synthetic_run(sweep / "copy", host_series(hosts=3, seeds=2, days=6, growth_gib_per_day=3),
                  overrides={"strategy": {"kind": "full_copy"}})
    assert choose_notebook(sweep) == "capacity"
    proc = cowbench("report", str(sweep), "--capacity", "20GiB")
    assert proc.returncode == 0, proc.stderr
    assert "report (capacity)" in proc.stdout
    names = figures_of(sweep)
    # host series only: no per-VM figure, no rejections
    assert names == ["first-host-full", "fullest-host-peak", "host-disk-by-group",
                     "host-disk-over-time"]
    assert_self_contained(html_of(sweep), len(names))
    head = read_tables(outputs_html(sweep))[0].set_index("group")
    assert list(head.index) == ["qcow2_overlay", "full_copy"]  # no "kind=" anywhere
    # full copies (3 GiB/day from 10 GiB) fill 20 GiB hosts within the 6 days; overlays
    # (1 GiB/day) do not: censored at the horizon, never extrapolated
    assert head.loc["full_copy", "replications filled"] == "2 of 2"
    assert head.loc["qcow2_overlay", "replications filled"] == "0 of 2"
    assert head.loc["qcow2_overlay", "first host full, median"] == "> 6 d"
    assert head.loc["full_copy", "95% interval of the median"] == \
        "needs 6 seeds for a 95% interval (has 2)"


def _capacity_sweep(root: Path) -> Path:
    """Two capacities, 6 replications each: 12 GiB fills within 4 days, 40 GiB never."""
    for cap in (12, 40):
        for seed in range(6):
            scen = (f"name: fleet\nduration: {4 * 86400}\n"
                    f"fleet: {{hosts: {{capacity: {cap * GiB}}}}}\n")
            synthetic_run(root / f"cap{cap}-s{seed}", host_series(hosts=2, seeds=1, days=4),
                          scenario=scen, overrides={"fleet": {"hosts": {"capacity": cap * GiB}}})
    (root / "sweep.json").write_text(json.dumps({"name": "capacities"}))
    return root


@pytest.fixture(scope="module")
def capacity_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`_capacity_sweep` with its report, made once."""
    sweep = _capacity_sweep(tmp_path_factory.mktemp("capacity") / "caps")
    assert make_report(sweep).notebook == "capacity"
    return sweep


@pytest.mark.slow
def test_a_capacity_sweep_over_capacities_draws_each_group_against_its_own(capacity_sweep):
    """The bug: every group was drawn against the first point's capacity, and a group that
    never fills got a time to full of about 500 days from extrapolation."""
    sweep = capacity_sweep
    html = outputs_html(sweep)
    head = read_tables(html)[0].set_index("group")
    assert list(head.index) == ["capacity 12 GiB", "capacity 40 GiB"]
    assert head.loc["capacity 12 GiB", "replications filled"] == "6 of 6"
    assert head.loc["capacity 40 GiB", "replications filled"] == "0 of 6"
    assert head.loc["capacity 40 GiB", "first host full, median"] == "> 4 d"
    assert head.loc["capacity 40 GiB", "95% interval of the median"] == \
        "both ends > 4 d (later than the horizon)"
    # host h1 grows 1.2 GiB a day from 10 GiB: 12 GiB at day 1.67 in every replication
    assert head.loc["capacity 12 GiB", "first host full, median"] == "1.67 d"
    assert head.loc["capacity 40 GiB", "capacity"] == "40 GiB"
    # the fullest host, h1, at day 4: 10 + 4 x 1.2 = 14.8 GiB of 40
    assert head.loc["capacity 40 GiB", "fullest host's peak (median)"] == \
        "14.8 GiB (37% of capacity)"
    assert "<details>" in html  # per-host detail folded away after the headline


@pytest.mark.slow
def test_capacity_report_on_a_model_run_without_time_series(tmp_path):
    run = sim_run(tmp_path / "sim")
    cells: list[tuple[int, int]] = []
    outcome = make_report(run, progress=lambda done, total: cells.append((done, total)))
    assert outcome.notebook == "capacity"
    assert figures_of(run) == ["host-disk-by-group", "vm-disk-by-group"]
    # a progress report per notebook cell (papermill adds one: the injected parameters),
    # ending with all of them done
    n = len(nbformat.read(ROOT / "notebooks" / "capacity.ipynb", as_version=4).cells) + 1
    assert cells[-1] == (n, n) and cells == sorted(cells)
    assert "End-of-run figures only" in html_of(run).read_text()


@pytest.fixture(scope="module")
def strategies_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A sweep over cluster sizes and ``cowbench report``'s stdout on it, made once."""
    sweep = sim_sweep(tmp_path_factory.mktemp("strategies") / "sweep")
    proc = cowbench("report", str(sweep))
    assert proc.returncode == 0, proc.stderr
    return sweep, proc.stdout


@pytest.mark.slow
def test_a_validation_report_without_time_series_does_not_describe_one(tmp_path):
    """"Over time" explained a figure (one panel per kind, the model solid, ...) and then
    said there was none: the explanation comes only with a figure now."""
    rows_p = [("sim", math.nan, "vm:a", "allocated_bytes", 2.0**20, "B", 1, 0)]
    rows_m = [("real", math.nan, "vm:a", "allocated_bytes", 2.0**20 * 0.9, "B", 1, 0)]
    run = synthetic_run(tmp_path / "run", records_frame(rows_p), records_frame(rows_m))
    make_report(run)
    assert figures_of(run) == ["rel-error-by-metric", "scatter-allocated_bytes"]
    text = html_of(run).read_text()
    assert "no figure over time" in text and "One panel per kind" not in text
    no_leftovers(run)


@pytest.mark.slow
def test_the_report_names_its_run_directory_as_the_user_did(tmp_path):
    """`cowbench report DIR` runs the notebook on the descriptor it holds DIR by
    (``/proc/self/fd/N``): the page said "Run directory `4`", the descriptor's number."""
    rows_p = [("sim", math.nan, "vm:a", "allocated_bytes", 2.0**20, "B", 1, 0)]
    rows_m = [("real", math.nan, "vm:a", "allocated_bytes", 2.0**20 * 0.9, "B", 1, 0)]
    run = synthetic_run(tmp_path / "qs-both", records_frame(rows_p), records_frame(rows_m))
    assert cowbench("report", str(run)).code == 0
    assert "Run directory <code>qs-both</code>" in html_of(run).read_text()


@pytest.mark.slow
def test_strategies_report_on_a_sweep(strategies_sweep, tmp_path):
    sweep, stdout = strategies_sweep
    assert "report (strategies)" in stdout
    names = figures_of(sweep)
    assert names == ["disk-by-strategy", "io-by-strategy", "read-amplification",
                     "space-amplification", "write-amplification"]
    text = assert_self_contained(html_of(sweep), 5)
    assert "cluster-sizes" in text and "cluster 4 KiB" in text and "cluster 1 MiB" in text
    # the IOPS and latency figures say what they rest on, as the validation report does
    assert "I/O figures are uncalibrated (no calibration profile)" in text
    no_leftovers(sweep)
    # the capacity notebook reads the same sweep, the strategies side by side (on a copy, its
    # strategies report replaced: the module's sweep keeps its own)
    sweep = Path(shutil.copytree(sweep, tmp_path / "sweep", symlinks=True))
    make_report(sweep, notebook="capacity")
    text = html_of(sweep).read_text()
    assert "cluster 4 KiB" in text and "cluster 1 MiB" in text
    assert "I/O figures are uncalibrated (no calibration profile)" in text
    no_leftovers(sweep)


@pytest.mark.slow
def test_a_strategies_sweep_over_kinds_draws_each_kind_as_a_category(tmp_path):
    """The bug: full_copy and rbd_clone drawn at "64 KiB cluster size" (a default they do not
    use), a continuous axis over extended_l2, a table of every combination."""
    root = tmp_path / "kinds"
    root.mkdir()
    for name, knobs in (("a", {"strategy.kind": "qcow2_overlay", "strategy.extended_l2": False}),
                        ("b", {"strategy.kind": "qcow2_overlay", "strategy.extended_l2": True}),
                        ("c", {"strategy.kind": "full_copy"}),
                        ("d", {"strategy.kind": "rbd_clone"}),
                        ("e", {"strategy.kind": "reflink_copy"})):
        sim_run(root / name, knobs)
    assert choose_notebook(root) == "strategies"
    make_report(root)
    assert figures_of(root) == ["disk-by-strategy", "io-by-strategy", "read-amplification",
                                "reflink-bytes", "space-amplification", "write-amplification"]
    table = read_tables(outputs_html(root))[0]
    # I/O per direction, each the median over the VMs doing it: no reader and writer pooled
    assert {"read IOPS", "write IOPS", "read p99 latency", "write mean latency"} \
        <= set(table.columns) and "IOPS" not in table.columns
    # one row per setting that ran, each kind with only its own knobs, in knob order
    assert list(table["strategy and knobs"]) == [
        "qcow2_overlay, extended L2 off", "qcow2_overlay, extended L2 on", "full_copy",
        "rbd_clone", "reflink_copy"]
    # a reflink copy costs its exclusive bytes: about what the guest wrote, not the base too
    reflink = table.set_index("strategy and knobs").loc["reflink_copy", "space amp."]
    assert 0.9 <= float(reflink.rstrip("×")) <= 1.5
    # what each setting takes in bytes: the host's physical bytes at the end, an RBD clone's
    # disks in Ceph (its host holds nothing of them)
    disk = table.set_index("strategy and knobs")["host disk at the end"]
    for name in ("a", "c", "e"):
        rec = pd.read_parquet(root / name / "predicted.parquet")
        used = rec[(rec.entity.str.startswith("host:")) & (rec.metric == "used_bytes")
                   & rec.t_s.isna()].value.sum()
        label = {"a": "qcow2_overlay, extended L2 off", "c": "full_copy",
                 "e": "reflink_copy"}[name]
        assert disk[label] == format_bytes(used)
    assert "in Ceph: " in disk["rbd_clone"] and "parent image" in disk["rbd_clone"] \
        and "in Ceph" not in disk["full_copy"]


@pytest.mark.slow
def test_a_fleet_sweep_over_cluster_size_gets_the_capacity_report(tmp_path):
    """The bug: strategy.cluster_size in a fleet sweep's grid picked the strategies notebook
    (three blank figures)."""
    from .test_sweep import sweep_file

    spec = sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB", "2MiB"]}, seeds=1)
    out = tmp_path / "out"
    proc = cowbench("sweep", str(spec), "--out", str(out), "--scheduler", "inprocess")
    assert proc.returncode == 0, proc.stderr
    assert choose_notebook(out) == "capacity"
    make_report(out)
    names = figures_of(out)
    # the VMs' disks from the fleets' quantile grids (no record per VM)
    assert {"first-host-full", "host-disk-over-time", "vms-refused",
            "vm-disk-by-group"} <= set(names)
    assert "cluster 64 KiB" in html_of(out).read_text()


@pytest.mark.slow
def test_report_writes_only_in_the_folder_it_owns(tmp_path):
    """Issue 20: a user's figures/ (or a figures symlink) and report.html survive; a second
    report replaces only the folder cowbench made and its own report.html copy."""
    run = sim_run(tmp_path / "r")
    mine = tmp_path / "elsewhere"
    mine.mkdir()
    (mine / "plot.png").write_bytes(b"mine")
    (run / "figures").symlink_to(mine)
    make_report(run)
    make_report(run)
    assert (run / "figures").is_symlink() and (mine / "plot.png").read_bytes() == b"mine"
    assert list(mine.iterdir()) == [mine / "plot.png"]
    assert (run / "report" / ".cowbench-report").is_file() and html_of(run).is_file()
    # a report.html the user wrote is left alone; the report is still written in report/
    (run / "report.html").write_text("<html>my notes</html>")
    outcome = make_report(run)
    assert (run / "report.html").read_text() == "<html>my notes</html>"
    assert outcome.top_html is None and outcome.html == run / "report" / "report.html"
    # a report/ folder cowbench did not make is refused, untouched
    other = sim_run(tmp_path / "o")
    (other / "report").mkdir()
    (other / "report" / "notes.txt").write_text("x")
    assert_clean_error(cowbench("report", str(other)), "was not written by `cowbench report`")
    assert [p.name for p in (other / "report").iterdir()] == ["notes.txt"]
    no_leftovers(other)


@needs_tools
@pytest.mark.real
def test_report_on_a_real_run(tmp_path, no_leaks):
    scenario = write(tmp_path, small_dict())
    run = tmp_path / "run"
    proc = cowbench("run", str(scenario), "--backend", "both", "--out", str(run),
                    "--uncalibrated")
    assert proc.code == 0, proc.stderr
    proc = cowbench("report", str(run))
    assert proc.code == 0, proc.stderr
    # the report says at the top what the I/O figures rest on
    assert "I/O figures are uncalibrated (no calibration profile)" in html_of(run).read_text()
    comp = pd.read_csv(run / "comparison.csv")
    names = figures_of(run)
    assert names == sorted(["rel-error-by-metric",
                            *(f"scatter-{m}" for m in comp["metric"].unique())])
    assert_self_contained(html_of(run), len(names))
    # the strategies notebook on a run with both backends shows the model's error too
    make_report(run, notebook="strategies")
    text = html_of(run).read_text()
    assert "How far the model is trusted" in text and "nothing to compare" not in text
    assert re.search(r"<td>allocated_bytes</td>\s*<td>\d+\.\d\d%</td>", text)
    # point 5: comparison and records as CSV beside the parquet files
    for name in ("predicted", "measured"):
        assert len(pd.read_csv(run / f"{name}.csv")) == len(
            pd.read_parquet(run / f"{name}.parquet"))


def _renders(html: Path, n_figures: int) -> None:
    page = browser.open_page(html)
    assert page.errors == []
    assert len(page.images) == n_figures
    for complete, width, height, alt in page.images:
        assert complete and width == 2000 and height > 0 and alt  # decoded, print resolution
    shot = imread(io.BytesIO(page.screenshot_png))
    assert shot.shape[1] == 1200 and shot[..., :3].std() > 0.05  # not a blank page


@needs_chromium
@pytest.mark.slow
def test_the_report_renders_in_chromium_without_console_errors(validation_run):
    run = validation_run
    assert len(figures_of(run)) == 4
    _renders(html_of(run), 4)
    _renders(run / "report.html", 4)


@needs_chromium
@pytest.mark.slow
def test_capacity_and_strategies_reports_render_in_chromium(capacity_sweep, strategies_sweep):
    _renders(html_of(capacity_sweep), len(figures_of(capacity_sweep)))
    kinds, _ = strategies_sweep
    _renders(html_of(kinds), len(figures_of(kinds)))


@needs_chromium
@pytest.mark.slow
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


@pytest.mark.slow
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
    # the model alone: nothing to validate (it wrote a page of empty tables, exit 0)
    assert_clean_error(cowbench("report", str(run), "--notebook", "validation"),
                       "no figure both backends know")
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
        assert {"path", "shown", "figures_dir", "capacity_bytes"} <= set(
            re.findall(r"^(\w+) =", tagged[0].source, re.M))
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        # notebooks read and plot; they never open result files or model themselves
        for banned in ("read_parquet", "read_csv", "open(", "import sim", "import real",
                       "simulate("):
            assert banned not in code, (name, banned)



def _connection_files() -> set[str]:
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.glob("tmp*.json") if "kernel_name" in p.read_text()}


def _kernels(run: Path) -> set[str]:
    """The notebook kernels of a report on ``run`` (their connection file is in the run's
    working folder): only this test's, never those of tests running beside it."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if b"ipykernel_launcher" in argv and str(run).encode() in argv:
            found.add(entry.name)
    return found


@pytest.mark.parametrize("delay_s", [0.0, 1.0])  # as the kernel starts; as cells run
@pytest.mark.slow
def test_sigterm_during_a_report_leaves_nothing_behind(tmp_path, delay_s):
    run = sim_run(tmp_path / "r")
    before = sorted(p.name for p in run.iterdir())
    files = _connection_files()
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "report", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _kernels(run):  # the notebook's kernel is starting: mid-report
        assert time.monotonic() < deadline and proc.poll() is None, "no kernel started"
        time.sleep(0.02)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted by signal SIGTERM" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == before
    time.sleep(0.5)
    assert _kernels(run) == set(), "kernel left running"
    assert _connection_files() - files == set(), "kernel connection file left behind"


@pytest.mark.slow
def test_a_sweep_varying_strategies_with_hosts_over_time_gets_both_reports(tmp_path):
    """Hosts sampled over time and strategy knobs over VMs with guest I/O: the capacity
    sections, then the strategies sections, in one page."""
    sweep = tmp_path / "both"
    for cs, growth in (("16KiB", 1.0), ("2MiB", 2.0)):
        made = sim_run(tmp_path / f"model-{cs}", {"strategy.cluster_size": cs})
        vms = pd.read_parquet(made / "predicted.parquet")
        records = pd.concat([vms, host_series(hosts=2, seeds=1, days=3,
                                              growth_gib_per_day=growth)], ignore_index=True)
        synthetic_run(sweep / cs, records, overrides={"strategy.cluster_size": cs},
                      scenario=(made / "scenario.yaml").read_text())
    assert choose_notebook(sweep) == "capacity+strategies"
    outcome = make_report(sweep, capacity_bytes=14 * GiB)  # the scenario names none
    assert outcome.notebook == "capacity+strategies"
    names = figures_of(sweep)
    assert {"first-host-full", "host-disk-over-time", "space-amplification",
            "write-amplification", "io-by-strategy"} <= set(names)
    text = html_of(sweep).read_text()
    assert text.index("Headline") < text.index("space amplification")
