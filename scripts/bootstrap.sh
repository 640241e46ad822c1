#!/usr/bin/env bash
# Install what cowbench needs on Debian 12 (run as root, or with sudo available):
#  - qemu-utils (qemu-img, qemu-io, qemu-nbd) and fio through apt-get, when missing;
#  - python3-venv when Python cannot make a venv;
#  - a venv in .venv holding cowbench and its Python dependencies (re-installed when
#    pyproject.toml changes).
# Safe to run again: it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
for pair in qemu-img:qemu-utils qemu-io:qemu-utils qemu-nbd:qemu-utils fio:fio \
            mkfs.xfs:xfsprogs xfs_io:xfsprogs filefrag:e2fsprogs; do
    tool=${pair%%:*}
    pkg=${pair##*:}
    if ! command -v "$tool" >/dev/null 2>&1; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]} with apt-get" >&2
    apt_install "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat .venv/.cowbench-stamp 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "bootstrap: installing cowbench and its Python dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$want" > .venv/.cowbench-stamp
fi
