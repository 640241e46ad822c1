"""Assertions on ``cowbench`` run in-process (``tests.clirun``, through ``cli.main`` as the
console script runs it): one-line errors and exit codes."""

from __future__ import annotations

from dataclasses import dataclass

from .clirun import cowbench


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """stderr's lines but warnings (``warning: ...``, said before a sweep starts)."""
        return [line for line in self.err.strip().splitlines()
                if line.strip() and not line.startswith("warning: ")]


def cli(*args: str) -> Result:
    ran = cowbench(*args)
    return Result(ran.code, ran.stdout, ran.stderr)


def assert_one_line(r: Result, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, and every line of stderr an ``error:`` line (warnings
    aside)."""
    assert r.code == code, (r.code, r.err, r.out)
    assert "Traceback" not in r.err + r.out, r.err
    assert r.lines and all(line.startswith("error: ") for line in r.lines), r.err
    for n in needles:
        assert n in r.err, (n, r.err)
