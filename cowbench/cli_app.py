"""What every ``cowbench`` command shares: the typer app, the consoles (results on stdout,
progress, warnings and errors on stderr), and how a path or a name is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # rich.progress is imported by the commands that show one
    from rich.progress import Progress

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Predict and measure the disk space and I/O of VMs sharing base images "
                       "through copy-on-write. Results are kept in bytes and seconds and "
                       "printed in KiB/MiB/GiB and s/min/h/days.")
out = Console()
err = Console(stderr=True)
CSV_HELP = ("Write the records as CSV too (predicted.csv, measured.csv) whatever their size; "
            "by default a table of more than 100,000 records is kept as parquet only.")


def bold(text: object) -> str:
    """``text`` (a path, a name: the user's text, never markup) in bold."""
    return f"[bold]{escape(str(text))}[/]"


def progress_bar(bar: bool = False, transient: bool = False) -> Progress:
    """A progress display on stderr: a spinner, the step, and with ``bar`` a bar and N/M."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [BarColumn(), MofNCompleteColumn()]
    # a transient display shows nothing where stderr is no terminal (a pipe, a file): then it
    # is not drawn at all (rich renders it ten times a second even so: 0.1 s of CPU in 20 s)
    hidden = transient and not err.is_terminal and not err.is_jupyter
    return Progress(*columns, TimeElapsedColumn(), console=err, transient=transient,
                    disable=hidden)
