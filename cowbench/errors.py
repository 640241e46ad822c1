"""One error root for everything cowbench reports to a user.

The CLI turns any :class:`CowbenchError` into a one-line message and exit code 2 (bad input,
missing tool) or 1 (a run that started and failed); anything else is a bug, printed as one
``internal error`` line (its traceback with ``COWBENCH_DEBUG=1``).
"""

from __future__ import annotations

from collections.abc import Sequence


class CowbenchError(Exception):
    """Root of cowbench's errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(CowbenchError):
    """Bad input from the user: a scenario, a path, an option. Nothing was started."""

    exit_code = 2


class ScenarioError(UsageError):
    """A scenario file that cannot be loaded; ``problems`` holds ``(key path, reason)`` pairs."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {path}: {reason}" if path else f"{source}: {reason}"
                 for path, reason in self.problems]
        super().__init__("\n".join(lines))


class MissingToolError(UsageError):
    """An external program the backend needs is not installed."""

    def __init__(self, tool: str, hint: str = "") -> None:
        self.tool = tool
        msg = f"{tool} not found on PATH"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class ToolError(CowbenchError):
    """An external command failed: its argv, exit code and output travel with the error."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        last = (stderr.strip() or stdout.strip()).splitlines()[-1:] or ["no output"]
        super().__init__(f"{self.argv[0]} exited with {returncode}: {last[0]}")


class RunFailed(CowbenchError):
    """A run started but could not finish; the run directory says why."""


class Interrupted(CowbenchError):
    """SIGINT or SIGTERM arrived during a run."""

    exit_code = 130


class DirectoryMoved(UserWarning):
    """A sweep's directory whose name no longer leads to it once the sweep is done (a directory
    above it renamed, or replaced by a symlink, meanwhile): the sweep went on in its own
    directory, held by its descriptor (``cowbench.fdtree.HeldDir``); the warning names where its
    files really are (:attr:`real`; :attr:`where`: the name given). The command line shows it
    as one ``warning:`` line, and reads the sweep's files back from :attr:`real`."""

    def __init__(self, message: str, where: str, real: str) -> None:
        super().__init__(message)
        self.where, self.real = where, real


class FilesystemWarning(UserWarning):
    """A host's disks are on a filesystem the model has no allocator for (tmpfs, btrfs, ...),
    or not on this machine: predicted as ext4 (``cowbench.diskfs``). Raised as a warning by
    :func:`cowbench.simulate` and :func:`cowbench.run_sweep` (once per note, saying how many
    of the sweep's points it holds for), as the command line prints its ``warning:`` line;
    :func:`cowbench.run` records it in run.json's ``host.model_disks_fs_notes``."""


class InexactStream(UserWarning):
    """A job's offset stream taken from fio's null engine where it may differ from the real
    run's (``cowbench.fiojob.engine_gap``), as no qemu-nbd is installed to take it from the
    nbd engine; the command line shows it as one ``warning:`` line."""
