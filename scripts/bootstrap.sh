#!/usr/bin/env bash
# Install what cowbench needs on Debian 12 (run as root, or with sudo available):
#  - qemu-utils (qemu-img, qemu-io, qemu-nbd) and fio through apt-get, when missing;
#  - python3-venv when Python cannot make a venv;
#  - a venv in .venv holding cowbench and its Python dependencies (re-installed when
#    pyproject.toml changes);
#  - with --test (scripts/test.sh passes it): chromium, which the report tests open
#    report.html in (headless). It is large, so quickstart.sh does not ask for it.
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

with_test=""
for arg in "$@"; do
    case "$arg" in
        --test) with_test=1 ;;
        *) echo "bootstrap: unknown option $arg (only --test)" >&2; exit 2 ;;
    esac
done

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
if [ -n "$with_test" ] && ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
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
    log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "bootstrap: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    echo "$want" > .venv/.cowbench-stamp
fi
