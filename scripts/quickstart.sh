#!/usr/bin/env bash
# Install what is missing, then run scenarios/quickstart.yaml with both backends (the model and
# the real qemu + fio stack) and print where the comparison landed. Extra arguments go to
# `cowbench run` (e.g. --out DIR, --seed N).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/cowbench run scenarios/quickstart.yaml --backend both "$@"
