#!/usr/bin/env bash
# Install what is missing, then run the whole test suite: lint (ruff), types (mypy --strict on
# the core), the import contract (lint-imports, pyproject.toml's [tool.importlinter]) and pytest
# (unit, property, oracle against qemu-img, integration with qemu-nbd and fio, report notebooks
# executed and opened in headless chromium). pytest runs one worker a core (pytest-xdist,
# -n auto), the real tests too: the quiet one (rates measured) alone, the serial
# ones (deadlines) one after another on one worker (tests/conftest.py). Extra arguments go to
# pytest (e.g. -k oracle, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -n auto "$@"
