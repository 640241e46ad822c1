#!/usr/bin/env bash
# Install what is missing, then run the whole test suite: lint (ruff), then pytest: types
# (mypy --strict on the three packages, tests/test_types.py), the import contract
# (pyproject.toml's [tool.importlinter], tests/test_imports.py), unit, property, oracle against
# qemu-img, integration with qemu-nbd and fio, report notebooks executed and opened in headless
# chromium. mypy and the contract are tests so that they run beside the others, not alone
# before them (mypy: about 18 s of CPU from a fresh clone). pytest runs one worker a core and
# one more (pytest-xdist, -n auto), the real tests too: a quiet one (rates measured) alone,
# the serial ones (deadlines) one after another on one worker (tests/conftest.py). Extra
# arguments go to pytest (e.g. -k oracle, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
# Bytecode kept, under .venv/pycache (out of the tree): with PYTHONDONTWRITEBYTECODE set, as in
# this project's sessions, each worker compiled every module and rewrote every test module's
# asserts from source at each collection (9.4 s of CPU against 3.6 s with the cache), and so
# did every Python a test starts (cowbench, the fast loop's collection, the sweeps' workers).
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"
unset PYTHONDONTWRITEBYTECODE
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -n auto "$@"
