#!/usr/bin/env bash
# Install what cowbench needs on Debian 12 (run as root, or with sudo available):
#  - first what a minimal Debian lacks to run the rest: python3, python3-venv, ca-certificates;
#  - then, through apt-get, the package of every program the code can start that is not on
#    PATH, from the one table in cowbench/packages.py (qemu-utils: qemu-img, qemu-io, qemu-nbd;
#    fio; rsync; coreutils; mount; xfsprogs; e2fsprogs ...);
#  - a venv in .venv holding cowbench and its Python dependencies (re-installed when
#    pyproject.toml changes).
# Options: --test (scripts/test.sh passes it) adds what only the tests start (chromium, which
# opens report.html headless; procps); --fresh-check installs only what
# scripts/fresh-check.sh needs on the host (debootstrap, git) and makes no venv; --dry-run
# prints the Debian packages it would install, one a line, and changes nothing.
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

groups=(run)
venv=1
dry_run=""
for arg in "$@"; do
    case "$arg" in
        --test) groups+=(test) ;;
        --fresh-check) groups=(fresh-check); venv="" ;;
        --dry-run) dry_run=1 ;;
        *) echo "bootstrap: unknown option $arg (--test, --fresh-check, --dry-run)" >&2; exit 2 ;;
    esac
done

missing=()
want() {  # add a package once
    case " ${missing[*]-} " in *" $1 "*) ;; *) missing+=("$1") ;; esac
}
install_missing() {
    if [ "${#missing[@]}" -eq 0 ]; then return; fi
    if [ -n "$dry_run" ]; then
        printf '%s\n' "${missing[@]}"
    else
        echo "bootstrap: installing ${missing[*]} with apt-get" >&2
        apt_install "${missing[@]}"
    fi
    missing=()
}

# what the rest needs (cowbench/packages.py PREREQUISITES): a minimal Debian has none of it
command -v python3 >/dev/null 2>&1 || want python3
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || want python3-venv
[ -s /etc/ssl/certs/ca-certificates.crt ] || want ca-certificates
install_missing
if ! command -v python3 >/dev/null 2>&1; then exit 0; fi  # --dry-run without python3

# every program the code can start, from the one table
table=$(python3 cowbench/packages.py "${groups[@]}")
while read -r program package; do
    command -v "$program" >/dev/null 2>&1 || want "$package"
done <<< "$table"
install_missing

if [ -n "$dry_run" ] || [ -z "$venv" ]; then exit 0; fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
fi
# cowbench is installed editable as a path: a .pth file in the venv's site-packages names this
# tree, so `import cowbench` reads it (edits take effect without reinstalling) and so does mypy,
# which follows .pth path entries but not import hooks: a user's script or notebook outside the
# tree type-checks against cowbench's py.typed packages with no MYPYPATH
# (tests/test_typed_install.py). setuptools' default for this flat layout is an import hook (a
# __editable___*_finder module), which mypy cannot see ("Cannot find implementation or library
# stub for module named cowbench"). The path is the tree's root, so its other top-level
# directories (tests, scripts, ...) become importable names too; cowbench imports none of them.
install=(-e '.[test]' --config-settings editable_mode=compat)
# the stamp names this tree and the install's form too: a venv whose editable install points at
# another checkout (a copy, a git worktree sharing it), or was made by an older bootstrap as an
# import hook, is reinstalled here, not trusted
stamp=$({ sha256sum pyproject.toml; pwd -P; echo "${install[*]}"; } | sha256sum | cut -d' ' -f1)
have=$(cat .venv/.cowbench-stamp 2>/dev/null || true)
if [ "$stamp" != "$have" ]; then
    echo "bootstrap: installing cowbench and its Python dependencies into .venv" >&2
    log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q "${install[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "bootstrap: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    echo "$stamp" > .venv/.cowbench-stamp
fi
