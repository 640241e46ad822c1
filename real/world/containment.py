"""Where the real backend may write, and how it makes sure it writes nowhere else.

The rules (README, "What is on disk during a real run"):

- Everything goes under the run directory's ``work/`` (``glance/``, ``hosts/<host>/``) or, for a
  host with a ``storage_dir``, under ``<storage_dir>/cowbench-<run token>/<host>/``. The unix
  sockets of qemu-nbd go to a private ``mkdtemp`` directory (mode 0700) under ``$TMPDIR``,
  because a socket path is limited to 108 bytes; it is removed with the run.
- Below those roots, every path is built from names that match the scenario's name pattern (no
  ``/``, never ``.`` or ``..``), SHA-1 digests and UUIDs: nothing in a scenario can steer a write.
- ``storage_dir`` must be absolute and free of ``..`` (checked when the scenario loads), an
  existing directory, and not inside a system tree (``/etc``, ``/usr``, ``/proc``, ...). It may be
  a symlink to a directory (``/srv -> /data`` is common); its resolved target is checked and
  used.
- Every directory written into is created here with ``mkdir`` that refuses an existing entry: a
  file, directory or symlink already at that place is an error, never followed or reused. Only
  directories created here are ever removed (``shutil.rmtree`` removes symlinks inside a tree,
  never what they point to).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cowbench.errors import UsageError
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


def check_storage_dirs(scenario: Scenario) -> None:
    """Every host's ``storage_dir`` is usable (before anything is written)."""
    for i, host in enumerate(scenario.hosts):
        if host.storage_dir:
            storage_root(scenario, i)


@dataclass
class WorkTrees:
    """The directories one real run writes into; creates them fresh and removes only them."""

    work: Path
    run_id: str
    created: list[Path] = field(default_factory=list)

    def create(self, scenario: Scenario) -> dict[str, Path]:
        """Make each host's root (and ``work/glance``); return ``{host name: root}``."""
        if self.work.is_symlink():
            raise UsageError(f"{self.work}: is a symlink; refusing to write through it")
        self.work.mkdir(parents=True, exist_ok=True)
        self._mkdir(self.work / "glance")
        roots: dict[str, Path] = {}
        for i, host in enumerate(scenario.hosts):
            if host.storage_dir:
                top = storage_root(scenario, i) / f"cowbench-{self.run_id}"
            else:
                top = self.work / "hosts"
            if top not in self.created:
                self._mkdir(top)
            roots[host.name] = top / host.name
            self._mkdir(roots[host.name])
        return roots

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(exist_ok=False)
        except FileExistsError:
            raise UsageError(f"{path}: already exists; cowbench only writes into directories "
                             "it creates itself") from None
        self.created.append(path)

    def remove(self) -> None:
        """Remove every directory this run created (shielded from SIGINT/SIGTERM)."""
        with shielded():
            for path in reversed(self.created):
                shutil.rmtree(path, ignore_errors=True)
            self.created.clear()
