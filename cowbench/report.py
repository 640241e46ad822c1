"""``cowbench report``: pick a notebook for a run or sweep, execute it, render one HTML file.

Which notebook (``notebooks/``):

- a run directory with figures known to both backends (``comparison.csv`` not empty):
  ``validation`` (the error table, predicted against measured, time series overlaid);
- a sweep whose points differ in a ``strategy.*`` knob: ``strategies`` (space and I/O
  amplification by strategy and knob);
- any other run or sweep (a fleet run of the model, a sweep over fleet size or seeds):
  ``capacity`` (host disk use with percentile bands, time to full).

The notebook is executed with papermill in a child process (a fresh kernel, the ``parameters``
cell overridden; see :mod:`cowbench.execute`) and rendered with nbconvert, code hidden, figures
embedded as PNG, nothing fetched from the network, so ``report.html`` opens from the file in
any browser. Beside it: ``report.ipynb``
(the executed notebook) and ``figures/`` (every figure as PNG and SVG). Everything is made in a
temporary folder and moved into place only when the notebook ran without error.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import Interrupted, UsageError
from .execute import execute_notebook
from .results import is_run_dir, is_sweep_dir, load_results
from .store import atomic_write_text

NOTEBOOKS = ("validation", "capacity", "strategies")
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
FIGURES = "figures"



@dataclass
class ReportOutcome:
    notebook: str
    html: Path
    figures: list[Path]


def choose_notebook(path: Path) -> str:
    """The notebook that fits a run or sweep directory (see the module docstring)."""
    if not (is_run_dir(path) or is_sweep_dir(path)):
        raise UsageError(f"{path}: neither a run directory (run.json) nor a sweep directory "
                         "(sweep.json, or run directories below it)")
    res = load_results(path)
    if is_run_dir(path):
        return "validation" if not res.comparison.dropna(subset=["rel_error"]).empty \
            else "capacity"
    if any(k.startswith("strategy.") for k in res.knobs):
        return "strategies"
    return "capacity"


def notebook_path(name: str) -> Path:
    if name not in NOTEBOOKS:
        raise UsageError(f"--notebook must be one of {', '.join(NOTEBOOKS)}, not {name!r}")
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.is_file():
        raise UsageError(f"{path}: notebook missing (cowbench must be installed from its "
                         "source tree, `pip install -e .`)")
    return path


def scenario_capacity(path: Path) -> int | None:
    """A host's disk capacity as the run's (or the sweep's first point's) resolved scenario
    states it: a fleet's ``fleet.hosts.capacity``, else the ``capacity_bytes`` every host
    shares; ``None`` when it says none."""
    for candidate in [path / "scenario.yaml", *sorted(path.glob("*/scenario.yaml")),
                      *sorted(path.glob("*/*/scenario.yaml"))]:
        try:
            data = yaml.safe_load(candidate.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        fleet = data.get("fleet") or {}
        if isinstance(fleet, dict) and isinstance(fleet.get("hosts"), dict):
            cap = fleet["hosts"].get("capacity")
            return int(cap) if isinstance(cap, int) else None
        caps = {h.get("capacity_bytes") for h in data.get("hosts") or [] if isinstance(h, dict)}
        only = caps.pop() if len(caps) == 1 else None
        return int(only) if isinstance(only, int) else None
    return None


def make_report(path: Path, notebook: str | None = None,
                capacity_bytes: int | None = None) -> ReportOutcome:
    """Execute the chosen notebook on ``path`` and write report.html, report.ipynb, figures/.

    Without ``capacity_bytes`` the scenario's host capacity is used, if it states one."""
    path = path.resolve()
    if capacity_bytes is None:
        capacity_bytes = scenario_capacity(path)
    name = notebook or choose_notebook(path)
    source = notebook_path(name)
    if notebook is not None:
        load_results(path)  # a clear error now rather than one from inside a cell
        if name == "validation" and not is_run_dir(path):
            raise UsageError(f"{path}: --notebook validation reads one run directory "
                             "(run.json), not a sweep")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=path))
    except OSError as err:
        raise UsageError(f"{path}: cannot write the report there: {err.strerror}") from None
    try:
        params = {"path": str(path), "figures_dir": str(tmp / FIGURES),
                  "capacity_bytes": capacity_bytes}
        try:
            executed = execute_notebook(source, tmp / "report.ipynb", params, tmp)
        except Interrupted as err:
            raise Interrupted(f"{err}; no report written in {path}") from None
        html = render_html(executed, title=f"cowbench {name} report: {path.name}")
        return _publish(path, tmp, name, html)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_html(nb: Any, title: str) -> str:
    """The executed notebook as one self-contained HTML page, code and prompts hidden."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="cowbench_report",
                            extra_template_basedirs=[str(TEMPLATE_DIR)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            embed_images=True)  # type: ignore[no-untyped-call]
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def _publish(path: Path, tmp: Path, name: str, html: str) -> ReportOutcome:
    figures = path / FIGURES
    made = tmp / FIGURES
    if figures.exists():
        shutil.rmtree(figures)
    if made.is_dir():
        made.rename(figures)
    shutil.move(str(tmp / "report.ipynb"), str(path / "report.ipynb"))
    atomic_write_text(path / "report.html", html)
    files = sorted(figures.iterdir()) if figures.is_dir() else []
    return ReportOutcome(name, path / "report.html", files)
