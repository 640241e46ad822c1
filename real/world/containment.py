"""Where the real backend may write, and how it makes sure it writes nowhere else.

The rules (README, "What is on disk during a real run"):

- Everything goes under the run directory's ``work/`` (``glance/``, ``hosts/<host>/``) or, for a
  host with a ``storage_dir``, under ``<storage_dir>/cowbench-<run token>/<host>/``. The unix
  sockets of qemu-nbd go to a private directory (mode 0700) under ``$TMPDIR``, reached as
  ``/proc/<pid>/fd/<fd>``, because a socket path is limited to 108 bytes; it is removed with
  the run (also when ``keep_images`` keeps the trees).
- Below those roots, every path is built from names that match the scenario's name pattern (no
  ``/``, never ``.`` or ``..``), SHA-1 digests and UUIDs: nothing in a scenario can steer a write.
- ``storage_dir`` must be absolute and free of ``..`` (checked when the scenario loads), an
  existing directory, and not inside a system tree (``/etc``, ``/usr``, ``/proc``, ...). It may be
  a symlink to a directory (``/srv -> /data`` is common); its resolved target is checked and
  used.
- The roots (``work/`` and ``<storage_dir>/cowbench-<run token>``) are created by
  ``mkdir(dir_fd=...)`` that refuses an existing entry (a file, directory or symlink already at
  that place is an error, never followed or reused), opened with ``O_NOFOLLOW``, checked with
  ``fstat`` (owner, empty), set to mode 0700, and from then on reached only through the
  descriptor (``/proc/<pid>/fd/<fd>``, ``cowbench.fdtree``): a storage_dir's owner who renames
  the tree or puts a symlink in its place redirects nothing. Only what was created is removed,
  found by device and inode, through descriptors, never crossing into a mount.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cowbench.errors import UsageError
from cowbench.fdtree import PrivateDir
from cowbench.scenario import Scenario, in_system_tree
from cowbench.signals import shielded


def storage_root(scenario: Scenario, index: int) -> Path:
    """The checked, resolved ``storage_dir`` of ``hosts[index]`` (which must have one)."""
    raw = scenario.hosts[index].storage_dir
    assert raw is not None
    where = f"hosts[{index}].storage_dir"
    path = Path(raw)
    if not path.is_dir():
        why = "does not exist" if not path.exists() else "is not a directory"
        raise UsageError(f"{where}: {raw} {why}")
    resolved = path.resolve(strict=True)
    if in_system_tree(resolved):
        raise UsageError(f"{where}: {raw} resolves to {resolved}, inside a system directory; "
                         "refused")
    return resolved


def _nothing(_: PrivateDir) -> None:
    pass


def check_storage_dirs(scenario: Scenario) -> None:
    """Every host's ``storage_dir`` is usable (before anything is written)."""
    for i, host in enumerate(scenario.hosts):
        if host.storage_dir:
            storage_root(scenario, i)


@dataclass
class WorkTrees:
    """The directories one real run writes into; creates them fresh and removes only them.

    ``work`` (the run directory's ``work/``) and each ``storage_dir``'s ``cowbench-<run
    token>`` are :class:`~cowbench.fdtree.PrivateDir` s: made, held and removed through
    descriptors (mode 0700); everything else is made inside them. :attr:`path` is the work
    directory as the tools reach it (``/proc/<pid>/fd/<fd>``).
    """

    work: Path
    run_id: str
    created: list[PrivateDir] = field(default_factory=list)
    on_create: Callable[[PrivateDir], None] = _nothing
    socket_dir: PrivateDir | None = None

    @property
    def path(self) -> Path:
        assert self.created, "create() first"
        return self.created[0].path

    def create(self, scenario: Scenario) -> dict[str, Path]:
        """Make ``work`` (with ``glance/``) and each host's root; return ``{host: root}``."""
        if self.work.is_symlink():
            raise UsageError(f"{self.work}: is a symlink; refusing to write through it")
        top = self._private(self.work.parent, self.work.name)
        (top.path / "glance").mkdir()
        # qemu-nbd's sockets: a unix socket path is limited to 108 bytes, and /proc/PID/fd/N
        # of a private directory under $TMPDIR is short whatever the run directory's path
        self.socket_dir = self._private(Path(tempfile.gettempdir()),
                                        f"cowbench-{secrets.token_hex(6)}")
        roots: dict[str, Path] = {}
        tops: dict[Path, PrivateDir] = {}
        for i, host in enumerate(scenario.hosts):
            if host.storage_dir:
                where = storage_root(scenario, i)
                if where not in tops:
                    tops[where] = self._private(where, f"cowbench-{self.run_id}")
                base = tops[where].path
            else:
                base = top.path / "hosts"
                base.mkdir(exist_ok=True)
            roots[host.name] = base / host.name
            roots[host.name].mkdir()
        return roots

    def _private(self, parent: Path, name: str) -> PrivateDir:
        d = PrivateDir.create(parent, name)
        self.created.append(d)
        self.on_create(d)
        return d

    @property
    def sockets(self) -> Path:
        assert self.socket_dir is not None, "create() first"
        return self.socket_dir.path

    def remove(self, keep_images: bool = False) -> None:
        """Remove every directory this run created (shielded from SIGINT/SIGTERM); with
        ``keep_images``, only the socket directory."""
        with shielded():
            for d in reversed(self.created):
                if d is self.socket_dir or not keep_images:
                    d.remove()
            self.created.clear()
