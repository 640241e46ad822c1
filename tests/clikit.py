"""``cowbench`` in-process, exactly as its console script runs it (``cowbench.cli.main``), so
the one-line error handling of ``main`` is exercised, not bypassed as CliRunner would."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()


def cli(*args: str) -> Result:
    from cowbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["cowbench", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return Result(int(code or 0), out.getvalue(), err.getvalue())


def assert_one_line(r: Result, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, and every line of stderr an ``error:`` line."""
    assert r.code == code, (r.code, r.err, r.out)
    assert "Traceback" not in r.err + r.out, r.err
    assert r.lines and all(line.startswith("error: ") for line in r.lines), r.err
    for n in needles:
        assert n in r.err, (n, r.err)
