"""The import contract (pyproject.toml's [tool.importlinter]): sim and real independent, the
core importing neither, each package layered, no cycles. scripts/test.sh runs it here, beside
the other tests (``.venv/bin/lint-imports`` prints the same contracts)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contract_is_kept() -> None:
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True) == 0


def test_the_contract_catches_sim_importing_real(tmp_path: Path) -> None:
    """A copy of the tree where the model imports the real backend breaks the contract. A
    process of its own: this one has already imported the packages from the repository."""
    for pkg in ("cowbench", "sim", "real"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    fs = tmp_path / "sim" / "storage" / "fs.py"
    fs.write_text(fs.read_text() + "\nimport real.workload.fio  # noqa\n")
    lint = "import sys; from importlinter.cli import lint_imports_command as m; sys.exit(m())"
    out = subprocess.run([sys.executable, "-c", lint, "--no-cache"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sim and real are independent BROKEN" in out.stdout
    assert "sim.storage.fs -> real.workload.fio" in out.stdout
