"""``cowbench report``: pick the notebooks for a run or sweep, execute them, render one HTML file.

Which notebook (``notebooks/``), by what the directory holds:

- a run directory with figures known to both backends (``comparison.csv`` not empty):
  ``validation`` (the error table, predicted against measured, time series overlaid),
  followed by ``capacity`` when its hosts were sampled over time and have a capacity (the
  predicted and the measured hosts' time to full side by side);
- a fleet run or sweep, or any whose hosts were sampled over time (a capacity question):
  ``capacity`` whatever its knobs (time to full, demand against each host's own capacity,
  rejections), followed by ``strategies`` when it also varies a ``strategy.*`` knob over VMs
  whose guest I/O was recorded;
- a sweep whose points differ in a ``strategy.*`` knob: ``strategies`` (space, write and read
  amplification, I/O, by strategy and knob setting);
- anything else: ``capacity``.

The notebooks are executed with papermill in a child process (a fresh kernel, the
``parameters`` cell overridden; see :mod:`cowbench.execute`), one after the other in one
kernel when a report combines them, and rendered with nbconvert, code hidden, figures embedded
as PNG, nothing fetched from the network. Everything is written inside ``DIR/report/``, a
directory the report owns (marked by a ``.cowbench-report`` file): ``report.html``,
``report.ipynb`` (the executed notebook) and ``figures/`` (every figure as PNG and SVG). A copy
of ``report.html`` is put at ``DIR/report.html`` (the run-directory contract) unless a file
there was not written by cowbench (recognised by its ``generator`` meta tag): a user's file is
never replaced, and nothing outside ``DIR/report/`` is ever deleted. Everything is made in a
temporary folder and moved into place only when the notebooks ran without error.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

from .errors import Interrupted, UsageError
from .execute import execute_notebook
from .fdtree import PrivateDir
from .lease import Lease
from .results import SweepResults, is_run_dir, is_sweep_dir, load_results

NOTEBOOKS = ("validation", "capacity", "strategies")
NOTEBOOK_DIR = Path(__file__).resolve().parent / "notebooks"  # -> ../notebooks, in the wheel too
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
FIGURES = "figures"
REPORT_DIR = "report"
MARKER = ".cowbench-report"
GENERATOR = '<meta name="generator" content="cowbench report">'

ProgressFn = Callable[[int, int], None]


@dataclass
class ReportOutcome:
    notebook: str
    html: Path
    figures: list[Path]
    top_html: Path | None = None


def choose_notebooks(path: Path) -> list[str]:
    """The notebooks that fit a run or sweep directory, in order (module docstring)."""
    if not (is_run_dir(path) or is_sweep_dir(path)):
        raise UsageError(f"{path}: neither a run directory (run.json) nor a sweep directory "
                         "(sweep.json, or run directories below it)")
    res = load_results(path)
    rec = res.records
    entity = rec["entity"].astype(str)
    hosts_over_time = bool((entity.str.startswith("host:") & rec["t_s"].notna()).any())
    if is_run_dir(path) and not res.comparison.dropna(subset=["rel_error"]).empty:
        return ["validation", "capacity"] if hosts_over_time and _capacity_known(res) else \
            ["validation"]
    strategies = any(k.startswith("strategy.") for k in res.knobs)
    if (entity == "fleet:all").any() or hosts_over_time:
        guest_io = bool(rec["metric"].isin(["write_ios", "read_ios"]).any())
        return ["capacity", "strategies"] if strategies and guest_io else ["capacity"]
    return ["strategies"] if strategies else ["capacity"]


def _capacity_known(res: SweepResults) -> bool:
    """Whether some point's hosts have a capacity (time to full is then a question)."""
    caps = res.points.get("host_capacities", pd.Series(dtype=object))
    known = [c for row in caps if isinstance(row, dict) for c in row.values()
             if isinstance(c, int | float) and math.isfinite(c) and c > 0]
    fallback = pd.to_numeric(res.points.get("capacity_bytes", pd.Series(dtype=float)),
                             errors="coerce")
    return bool(known) or bool((fallback > 0).any())


def choose_notebook(path: Path) -> str:
    """The notebooks :func:`choose_notebooks` picks, as the report names them (``a+b``)."""
    return "+".join(choose_notebooks(path))


def notebook_path(name: str) -> Path:
    if name not in NOTEBOOKS:
        raise UsageError(f"--notebook must be one of {', '.join(NOTEBOOKS)}, not {name!r}")
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.is_file():
        raise UsageError(f"{path}: notebook missing (cowbench must be installed from its "
                         "source tree, `pip install -e .`)")
    return path


def combined_notebook(names: list[str], work: Path) -> Path:
    """One notebook running ``names`` in turn: the first whole, the others without their
    parameters cell (one kernel, one parameters cell, sections one after the other)."""
    if len(names) == 1:
        return notebook_path(names[0])
    books = [nbformat.read(notebook_path(n), as_version=4)  # type: ignore[no-untyped-call]
             for n in names]
    for name, book in zip(names, books, strict=True):
        for cell in book.cells:  # ids unique across the notebooks joined
            cell["id"] = f"{name}-{cell.get('id', id(cell))}"
    nb = books[0]
    for other in books[1:]:
        nb.cells.extend(c for c in other.cells
                        if "parameters" not in c.metadata.get("tags", []))
    out = work / "combined.ipynb"
    nbformat.write(nb, out)  # type: ignore[no-untyped-call]
    return out


def make_report(path: Path, notebook: str | None = None, capacity_bytes: int | None = None,
                progress: ProgressFn = lambda _d, _t: None, shown: Path | None = None
                ) -> ReportOutcome:
    """Execute the chosen notebook(s) on ``path``; write ``path/report/`` and report.html.

    ``capacity_bytes`` replaces every host's capacity (default: each host's own). ``shown``:
    the directory as the user named it when ``path`` is the descriptor ``cowbench report``
    holds it by (``cowbench.fdtree.HeldDir.io``, which is not resolved: its name may lead
    elsewhere by now); the report's title and its lease name it so."""
    if shown is None:
        path = shown = path.resolve()
    names = [notebook] if notebook else choose_notebooks(path)
    for name in names:
        notebook_path(name)
    if notebook is not None:
        res = load_results(path)  # a clear error now rather than one from inside a cell
        if notebook == "validation" and not is_run_dir(path):
            raise UsageError(f"{path}: --notebook validation reads one run directory "
                             "(run.json), not a sweep")
        if notebook == "validation" and res.comparison.dropna(subset=["rel_error"]).empty:
            raise UsageError(f"{path}: --notebook validation compares the model with a real "
                             "run, and this run has no figure both backends know (run it "
                             "with --backend both; --notebook capacity or strategies read "
                             "the model alone)")
    owned_report_dir(path)
    token = secrets.token_hex(4)
    try:
        # a private tree in a lease of its own: killed outright, `cowbench gc` removes it
        work = PrivateDir.create(path, f".report-{token}")
    except OSError as err:
        raise UsageError(f"{path}: cannot write the report there: {err.strerror}") from None
    lease = Lease.take(shown, None, f"report-{token}", "report")
    tmp = work.path  # by its descriptor: its name in ``path`` is the directory owner's to swap
    try:
        lease.add_tree(work)
        new = tmp / REPORT_DIR
        new.mkdir()
        (new / MARKER).write_text("written by `cowbench report`; the whole folder is "
                                  "replaced by the next report\n")
        # ``shown``: ``path`` may be a descriptor's /proc/self/fd/N, whose name is a number
        params = {"path": str(path), "shown": str(shown), "figures_dir": str(new / FIGURES),
                  "capacity_bytes": capacity_bytes}
        source = combined_notebook(names, tmp)
        try:
            executed = execute_notebook(source, new / "report.ipynb", params, tmp, progress)
        except Interrupted as err:
            raise Interrupted(f"{err}; no report written in {path}") from None
        title = f"cowbench {' + '.join(names)} report: {shown.name}"
        (new / "report.html").write_text(render_html(executed, title))
        return _publish(path, tmp, "+".join(names))
    finally:
        work.remove()
        lease.release()


def owned_report_dir(path: Path) -> Path | None:
    """``path/report`` if cowbench made it (its marker inside), None if absent; anything else
    there (a user's folder, a symlink, a file) is refused, never replaced."""
    ident = _owned_report_ident(path)
    return None if ident is None else path / REPORT_DIR


def _owned_report_ident(path: Path) -> tuple[int, int] | None:
    """:func:`owned_report_dir`'s check, giving the folder's device and inode: it is opened
    with ``O_NOFOLLOW`` and its marker looked up through that descriptor, never through a
    symlink."""
    import stat

    from .fdtree import DIR_FLAGS

    target = path / REPORT_DIR
    refused = UsageError(f"{target}: exists and was not written by `cowbench report`; move "
                         "it away (the report is written into that folder)")
    try:
        fd = os.open(target, DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:  # a symlink (ELOOP), a file (ENOTDIR)
        raise refused from None
    try:
        st = os.fstat(fd)
        try:
            marker = os.stat(MARKER, dir_fd=fd, follow_symlinks=False)
        except OSError:
            raise refused from None
        if not stat.S_ISREG(marker.st_mode):
            raise refused
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


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
    return str(body).replace("<head>", f"<head>\n{GENERATOR}", 1)


def written_by_cowbench(html: Path) -> bool:
    """Whether ``html`` is a report cowbench wrote (its generator tag near the top)."""
    try:  # never through a symlink, never blocking on a FIFO
        fd = os.open(html, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        import stat

        try:
            return stat.S_ISREG(os.fstat(fd).st_mode) and GENERATOR.encode() in f.read(4096)
        except OSError:
            return False


def _publish(path: Path, tmp: Path, name: str) -> ReportOutcome:
    target = path / REPORT_DIR
    old = _owned_report_ident(path)  # checked again: the notebook took a while
    if old is not None:
        # moved by name, so the folder checked is what must have moved: anything else that
        # took its name meanwhile (a symlink to a decoy) is put back and the report refused
        os.rename(target, tmp / "previous")
        moved = os.lstat(tmp / "previous")
        if (moved.st_dev, moved.st_ino) != old:
            os.rename(tmp / "previous", target)
            raise UsageError(f"{target}: replaced while the report was made; refused (nothing "
                             "written there)")
    try:
        os.rename(tmp / REPORT_DIR, target)
    except OSError as err:  # something took the name meanwhile: left as it is
        raise UsageError(f"{target}: appeared while the report was made "
                         f"({err.strerror}); refused (nothing written there)") from None
    top = path / "report.html"
    ours = not os.path.lexists(top) or (top.is_file() and not top.is_symlink()
                                        and written_by_cowbench(top))
    if ours:  # else a file of the user's: left alone
        from .store import atomic_write_bytes

        atomic_write_bytes(top, (target / "report.html").read_bytes())
    figures = target / FIGURES
    files = sorted(figures.iterdir()) if figures.is_dir() else []
    return ReportOutcome(name, target / "report.html", files, top if ours else None)
