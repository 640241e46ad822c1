"""``cowbench ARGS`` in this process, exactly as the console script runs it (``cli.main``: one
line per error, exit codes), without the ~1 s of starting Python for each call."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from cowbench.cli import main


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        """The exit code under subprocess's name, so a test reads either kind of run."""
        return self.code


def cowbench(*args: str, env: dict[str, str | None] | None = None) -> Ran:
    """Run ``cowbench *args`` through ``main()`` with stdout and stderr captured."""
    argv = sys.argv
    code: int = 0
    with CliRunner().isolation(env=env) as (out, err, _):
        sys.argv = ["cowbench", *args]
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = argv
        return Ran(code, out.getvalue().decode(), err.getvalue().decode())


def cowbench_line(line: str) -> Ran:
    """A command line as the README writes it (``cowbench show results/x``), run in-process."""
    words = shlex.split(line)
    assert words[0] == "cowbench", line
    return cowbench(*words[1:])


def table_lines(text: str) -> list[list[str]]:
    """The body rows of the rich tables in ``text``, each as its cells, stripped."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines()
            if line.startswith("│")]


def table_rows(text: str) -> dict[str, list[str]]:
    """The body rows of the rich tables in ``text``: first cell -> the other cells (the first
    row with that first cell)."""
    rows: dict[str, list[str]] = {}
    for cells in table_lines(text):
        rows.setdefault(cells[0], cells[1:])
    return rows
