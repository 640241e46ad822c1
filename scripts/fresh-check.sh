#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 machine: builds a clean Debian 12 root
# (debootstrap --variant=minbase bookworm, from the mirror in
# /etc/apt/sources.list.d/debian.sources), mounts /proc, /sys, /dev, /dev/pts and tmpfs /tmp
# and /dev/shm into it, clones the committed HEAD of this repository into it (git clone: not
# the work tree), and there, as a new user would, as root: runs `./scripts/quickstart.sh`
# with no arguments, then a smoke part of `./scripts/test.sh` (ruff, and by default mypy's
# test, the tool-table tests and the real integration and path tests; arguments after `--`
# replace that pytest selection). Everything comes from Debian's and PyPI's registries, nothing from here.
#
# Prints each phase's time and the total. Measured on the 2-core development machine
# (2026-12-02, beside a full test suite): 297 s in all (debootstrap 27 s, quickstart 167 s with
# its installs and calibration, test.sh smoke 97 s with chromium's install; 700 s on a busier
# machine); README, "Checking a fresh machine".
#
# Run as root (debootstrap, chroot, mounts): ./scripts/fresh-check.sh [--keep] [-- PYTEST ARGS]
# It always unmounts what it mounted and stops every process left in the root, on success,
# failure or Ctrl-C, then deletes the root (--keep keeps it, unmounted, and prints where).
# Exit code: 0 both commands passed, 1 one failed, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

keep=""
smoke=(-x -q tests/test_types.py tests/test_packages.py tests/test_integration.py
       tests/test_paths.py)
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) keep=1; shift ;;
        --) shift; smoke=("$@"); break ;;
        *) echo "fresh-check: unknown option $1 (--keep, -- PYTEST ARGS)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "fresh-check: run as root (debootstrap, chroot and mounts need it)" >&2
    exit 2
fi

start=$(date +%s)
phase_start=$start
say() { echo "fresh-check: $*"; }
phase_done() {  # NAME: print how long the phase took
    local now
    now=$(date +%s)
    say "$1: $((now - phase_start)) s"
    phase_start=$now
}

root=""
mounted=()
cleanup() {
    local rc=$?
    trap '' INT TERM  # cleaning up cannot be cut short
    if [ -n "$root" ]; then
        stop_processes
        unmount_all
        if [ -n "$keep" ]; then
            say "kept the root (unmounted): $root"
        elif ! grep -q " $root[/ ]" /proc/mounts; then
            rm -rf --one-file-system "$root"
        else
            say "something is still mounted under $root; not deleting it" >&2
            rc=1
        fi
    fi
    say "total: $(( $(date +%s) - start )) s"
    exit "$rc"
}
stop_processes() {  # every process whose root is the fresh root: only what this check started
    local pid pids=()
    for pid in /proc/[0-9]*; do
        if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then pids+=("${pid#/proc/}"); fi
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        say "stopping processes left in the root: ${pids[*]}" >&2
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 1
    fi
}
unmount_all() {
    local m
    # what the tests mounted inside and left (there should be none), deepest first
    while read -r m; do
        case " ${mounted[*]-} " in *" $m "*) continue ;; esac
        say "unmounting $m, left by a test" >&2
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r)
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
    done
    mounted=()
    # loop devices on files inside the root
    losetup -n -O NAME,BACK-FILE 2>/dev/null | while read -r dev file; do
        case "$file" in "$root"/*) losetup -d "$dev" 2>/dev/null || true ;; esac
    done
}
trap cleanup EXIT
trap 'say "interrupted" >&2; exit 130' INT TERM

mount_in() {  # mount_in TARGET MOUNT-ARGS...: mount under the root, remembered for cleanup
    local target=$root$1
    shift
    mkdir -p "$target"
    mount "$@" "$target"
    mounted+=("$target")
    mount --make-private "$target"  # nothing mounted below it reaches the host's tree
}

# -- the host: debootstrap and git, the mirror -----------------------------------------------
./scripts/bootstrap.sh --fresh-check
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
         || true)
mirror=${mirror:-http://deb.debian.org/debian}
head=$(git -C "$repo" rev-parse HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    say "note: the work tree has uncommitted changes; the check uses the committed $head"
fi
phase_done "host tools"

# -- a clean Debian 12 root ------------------------------------------------------------------
root=$(mktemp -d /var/tmp/cowbench-fresh.XXXXXX)
chmod 755 "$root"
say "debootstrap --variant=minbase bookworm $root $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
    tail -20 "$root.debootstrap.log" >&2; rm -f "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# this network's own certificate authorities (site-local, e.g. a TLS-intercepting proxy's), as
# every machine on it has them: installing ca-certificates in the root then trusts them too,
# so apt and pip reach their registries. Nothing else is taken from this machine.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
mount_in /proc -t proc proc
mount_in /sys -t sysfs sysfs
mount_in /dev --bind /dev
mount_in /dev/pts --bind /dev/pts
mount_in /dev/shm -t tmpfs -o mode=1777 tmpfs
mount_in /tmp -t tmpfs -o mode=1777 tmpfs
say "root: $(du -sh --one-file-system "$root" | cut -f1)"
phase_done "debootstrap"

# -- the committed HEAD, cloned --------------------------------------------------------------
git clone -q --no-hardlinks --no-checkout "$repo" "$root/root/cowbench"
git -C "$root/root/cowbench" checkout -q --detach "$head"
say "cloned $head"
phase_done "clone"

inside() {  # run a command in the fresh root, as a new root login would have it
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/bash -c "cd /root/cowbench && $1" </dev/null
}

failed=""
say "./scripts/quickstart.sh"
if ! inside ./scripts/quickstart.sh; then failed="quickstart"; fi
phase_done "./scripts/quickstart.sh"

say "./scripts/test.sh ${smoke[*]}"
if ! inside "./scripts/test.sh $(printf '%q ' "${smoke[@]}")"; then failed="$failed test.sh"; fi
phase_done "./scripts/test.sh ${smoke[*]}"

if [ -n "$failed" ]; then
    say "FAILED: ${failed# }"
    exit 1
fi
say "passed: ./scripts/quickstart.sh and ./scripts/test.sh ${smoke[*]}"
