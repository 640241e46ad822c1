"""The wheel carries what cowbench reads besides its code: a user who installs it (``pip install
.``, ``pip install git+...``) rather than the README's editable venv still gets the report's
notebooks and template, and the PEP 561 marker that lets mypy check code importing cowbench."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The tree as a build sees it, copied: ``pip wheel`` builds in the source directory
    (``build/``), and a test writes nothing in the checkout."""
    skip = shutil.ignore_patterns(".venv", ".git", "results", "build", "*.egg-info", "__pycache__",
                                  ".mypy_cache", ".ruff_cache", ".hypothesis", ".pytest_cache")
    shutil.copytree(ROOT, dest, ignore=skip, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("wheel")
    src = _source_copy(where / "src")
    # the venv's setuptools (the test extra), so the build needs no network
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(where / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = (where / "dist").glob("cowbench-*.whl")
    return found


def test_the_wheel_holds_the_notebooks_the_template_and_the_typing_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    books = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert books >= {"validation.ipynb", "capacity.ipynb", "strategies.ipynb"}
    assert {f"cowbench/notebooks/{b}" for b in books} <= names
    template = ROOT / "cowbench" / "templates"
    assert {str(p.relative_to(ROOT)) for p in template.rglob("*") if p.is_file()} <= names
    assert {"cowbench/py.typed", "sim/py.typed", "real/py.typed"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # every module of the three packages, subpackages too (cowbench.nova was left out)
    for package in ("cowbench", "sim", "real"):
        modules = {str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py")}
        assert modules <= names, sorted(modules - names)


def test_an_installed_wheel_finds_its_notebooks_and_template(wheel: Path,
                                                             tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    probe = ("import importlib; r = importlib.import_module('cowbench.report'); "
             "print(r.notebook_path('validation')); print(r.TEMPLATE_DIR)")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                           f"{str(target)!r}); {probe}"], capture_output=True, text=True,
                          check=True, timeout=120)
    notebook, template = (Path(line) for line in done.stdout.splitlines())
    assert notebook.is_file() and notebook.is_relative_to(target.resolve())
    assert (template / "cowbench_report" / "index.html.j2").is_file()
