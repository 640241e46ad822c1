"""The commands over what runs wrote: ``fio-json``, ``fio-check``, ``show``, ``gc``, ``report``
and ``repredict``. Plain functions, registered on the app by :mod:`cowbench.cli` (after the
commands that run, the order ``--help`` lists them in)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .cli_app import bold, out, progress_bar
from .errors import CowbenchError, UsageError
from .fdtree import HeldDir


@contextmanager
def held_dir(path: Path, what: str, *, writing: bool) -> Iterator[HeldDir]:
    """The run or sweep directory ``path`` a command comes back to, held
    (:meth:`cowbench.fdtree.HeldDir.open_existing`) while the command reads and writes it
    through :attr:`HeldDir.io`: a directory its owner renamed, or a ``report/`` or a file in it
    swapped for a symlink between a check and a write, cannot make root write or read
    elsewhere (under sudo the owner is the invoking user). An error raised meanwhile names
    the directory as the user gave it, not ``/proc/<pid>/fd/<fd>``, which means nothing once
    the command ends."""
    with HeldDir.open_existing(path, what, writing=writing) as held:
        try:
            yield held
        except CowbenchError as err:
            io = str(held.io)
            if io in str(err) and type(err).__str__ is BaseException.__str__:
                err.args = (str(err).replace(io, str(path)),)
            raise


def fio_json_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory with the "
                                                         "model's records.")],
                 logs: Annotated[bool, typer.Option(help="Also fio's bw, iops and latency logs "
                                                    "(runs the model again): those a VM's job "
                                                    "file asks for, else all four.")] = False,
                 log_avg_msec: Annotated[int, typer.Option(
                     min=0, help="fio's log_avg_msec of a job whose file sets none: each line's "
                     "window in ms (0: a line per I/O).")] = 500) -> None:
    """Write the model's I/O figures for each VM as fio JSON (fio-json/<vm>.json), one entry
    per job fio reports (each job section and clone, group_reporting folding clones), for
    fio's own tooling (fio-plot) to plot beside the real run's fio output in raw/."""
    from .fiojson import write_fio_json
    from .fiologs import real_log_dirs, run_logs, write_logs
    from .scenario import load_scenario
    from .store import read_records, read_run

    with held_dir(run_dir, "run directory", writing=True) as held:
        io = held.io
        meta = read_run(io)
        pred = io / "predicted.parquet"
        if not os.path.lexists(pred):
            raise UsageError(f"{run_dir}: no predicted.parquet (run the model: --backend "
                             "sim|both)")
        scenario = load_scenario(io / "scenario.yaml", resolved=True)
        # the logs first, unwritten: what they refuse (a timeline, two VMs' logs of one name)
        # is refused before any file is written
        texts = run_logs(io, scenario, meta.get("seed", scenario.seed), log_avg_msec) \
            if logs else None
        records = read_records(pred)
        with held.sub("fio-json", create=True) as fj:  # never through a symlink at its name
            paths = write_fio_json(fj.io, scenario, records)
            out.print(f"{len(paths)} fio JSON file(s) in {bold(run_dir / 'fio-json')}",
                      soft_wrap=True)
            if texts is not None:
                written = write_logs(fj.io, texts)
                out.print(f"{len(written)} fio log file(s) in {bold(run_dir / 'fio-json')}",
                          soft_wrap=True)
                for d in real_log_dirs(io, [p.name for p in written]):
                    out.print("the real run's own fio logs, of the same names: "
                              f"{bold(run_dir / d.relative_to(io))}", soft_wrap=True)


def fio_check_cmd(job: Annotated[Path, typer.Argument(help="A fio job file.")]) -> None:
    """Print, per job section, how cowbench handles each option of a fio job file (exit 2 if
    any is refused)."""
    from .fiocheck import check

    lines, refused = check(job)
    for line in lines:
        out.print(escape(line), highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(2)


def show(path: Annotated[Path, typer.Argument(help="A run directory, or a sweep directory.")]
         ) -> None:
    """Print a run's figures (per host and VM: allocated, file size, IOPS, latency, predicted
    and measured; for a fleet its fullest hosts and when they fill) and its comparison, or a
    sweep's points (status, knobs, headline figures). Sizes in KiB/MiB/GiB."""
    from .show import show as show_path

    # a pipe or a file gets whole rows (a terminal: its own width); 80 columns squeeze a sweep
    with held_dir(path, "run or sweep directory", writing=False) as held:
        show_path(held.io, out if out.is_terminal else Console(width=160), shown=path)


def gc() -> None:
    """Clean up after runs and calibrations that died without doing so (killed outright): stop
    their qemu-nbd and fio, detach their mounts, remove their trees and socket directories
    (only what each recorded that it created, checked by device and inode) and mark a run's
    run.json abandoned. Those still alive are left alone."""
    from .lease import collect, dead_leases

    dead = dead_leases()
    for record in dead:
        done = collect(record)
        what = ("calibration of " if record.get("kind") == "calibration" else "") + \
            record["run_dir"]
        out.print(f"{what}: abandoned; " + ("; ".join(done) or "nothing left"),
                  soft_wrap=True, highlight=False)
    if not dead:
        out.print("no dead runs")


def report(
    path: Annotated[Path, typer.Argument(help="A run directory, or a sweep directory (a folder "
                                              "of run directories, with or without sweep.json).")],
    notebook: Annotated[str | None, typer.Option(help="validation, capacity or strategies "
                        "(default: validation for a run with both backends, capacity for a "
                        "fleet or anything whose hosts were sampled over time, strategies for a "
                        "sweep over strategy knobs; capacity then strategies when a sweep is "
                        "both).")] = None,
    capacity: Annotated[str | None, typer.Option(help="A what-if host disk capacity, e.g. "
                        "2TiB, for every host (less each host's reserve, as its own; default: "
                        "each host's own); placement stays the run's.")] = None,
) -> None:
    """Execute the notebooks on a run or sweep; write DIR/report/ (report.html, report.ipynb,
    figures/) and a copy of report.html at DIR/report.html."""
    from .report import make_report
    from .units import parse_size

    try:
        cap = parse_size(capacity) if capacity is not None else None
    except ValueError as e:
        raise UsageError(f"--capacity: {e}") from None
    if cap == 0:
        raise UsageError("--capacity: must be more than 0 bytes")
    with progress_bar(bar=True, transient=True) as bar:
        task = bar.add_task(f"report: notebook cells on {path}", total=None)
        with held_dir(path, "run or sweep directory", writing=True) as held:
            outcome = make_report(held.io, notebook, cap, progress=lambda d, t: bar.update(
                task, completed=d, total=t), shown=held.where)
    # soft_wrap: a path is never broken across lines, so it can be copied
    # paths as the user gave DIR, so they can be copied
    out.print(f"report ({outcome.notebook}): {bold(path / 'report' / 'report.html')}",
              soft_wrap=True, highlight=False)
    if outcome.top_html is not None:
        out.print(f"copy:     {bold(path / 'report.html')}", soft_wrap=True, highlight=False)
    else:
        out.print(f"{escape(str(path / 'report.html'))}: not written by cowbench, left as it "
                  "was", soft_wrap=True, highlight=False)
    out.print(f"figures:  {len(outcome.figures)} files in "
              f"{bold(path / 'report' / 'figures')}", soft_wrap=True, highlight=False)


def repredict_cmd(run_dir: Annotated[Path, typer.Argument(
        help="A finished run directory whose workloads set write_iolog: true.")]) -> None:
    """Re-run the model on the offsets the real run recorded (raw/), so the comparison shows
    the allocation model's own error, without the offset model's. Writes repredicted.parquet
    and comparison-repredicted.csv."""
    from .runner import repredict
    from .show import print_comparison
    from .store import read_comparison

    with held_dir(run_dir, "run directory", writing=True) as held:
        io = held.io
        if not os.path.lexists(io / "scenario.yaml"):
            raise UsageError(f"{run_dir}: not a run directory (no scenario.yaml)")
        predicted, comp = repredict(io)
        out.print(f"re-predicted: {bold(run_dir / predicted.relative_to(io))}")
        if comp is not None:
            from .results import load_run

            print_comparison(read_comparison(comp),
                             out if out.is_terminal else Console(width=160),
                             runs=load_run(io).real_runs)  # whole rows in a pipe
            out.print(f"comparison:   {bold(run_dir / comp.relative_to(io))}")


#: name on the command line -> function, in the order ``--help`` lists them
COMMANDS: dict[str, Callable[..., None]] = {
    "fio-json": fio_json_cmd,
    "fio-check": fio_check_cmd,
    "show": show,
    "gc": gc,
    "report": report,
    "repredict": repredict_cmd,
}
