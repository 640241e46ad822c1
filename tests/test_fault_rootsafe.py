"""Root-safe under a hostile user (issue 20, part 1): what root creates it reaches through
descriptors, what it removes it proves it created, and a user's image file is opened once,
under a policy, and copied before it is inspected and converted.

The races are run for real: a process as ``nobody`` (``tests/hostile.py``) watches with
inotify and swaps names the moment cowbench touches them.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from inotify_simple import INotify, flags

import cowbench.tools
from cowbench.errors import CowbenchError, ScenarioError, UsageError
from cowbench.fdtree import PrivateDir
from cowbench.resolve import resolve
from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario, parse_scenario
from cowbench.tools import RawLog

from .clirun import cowbench as cowbench_cli
from .conftest import needs_tools, small_dict
from .hostile import NOBODY, SWAP_ON_CLOSE, SWAP_TREE, attacker, give, shared_dir

MARKER = b"SECRET-OF-ROOT-7f3a9c"


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def _image_scenario(tmp_path: Path, path: str, fmt: str = "raw", **extra: Any) -> Path:
    d = small_dict()
    d["images"][0] = {"name": "img", "format": fmt, "path": path, **extra}
    for vm in d["vms"]:
        vm["root_size"] = "96MiB"
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _refusal(scenario: Path) -> str:
    with pytest.raises(ScenarioError) as err:
        resolve(load_scenario(scenario), str(scenario))
    (where, why), *_ = err.value.problems
    assert where == "images[0].path"
    return why


# -- the tree a run builds ----------------------------------------------------------------------

def test_a_private_dir_is_removed_by_inode_and_never_through_a_symlink(tmp_path: Path) -> None:
    """Renamed away and replaced by a symlink to a victim: writes still land in the run's own
    directory, removal deletes it (found by inode under its new name), not the victim, and a
    symlink inside is unlinked, not followed."""
    parent, victim = tmp_path / "parent", tmp_path / "victim"
    parent.mkdir()
    victim.mkdir()
    (victim / "precious").write_text("keep")
    d = PrivateDir.create(parent, "tree")
    assert stat.S_IMODE(os.fstat(d.fd).st_mode) == 0o700
    (parent / "tree").rename(parent / "moved")
    (parent / "tree").symlink_to(victim)
    (d.path / "sub").mkdir()
    (d.path / "sub" / "file").write_text("x")
    (d.path / "sub" / "link").symlink_to(victim)
    assert (parent / "moved" / "sub" / "file").read_text() == "x"
    d.remove()
    assert sorted(os.listdir(parent)) == ["tree"] and (parent / "tree").is_symlink()
    assert sorted(os.listdir(victim)) == ["precious"]


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree").symlink_to(tmp_path)
    with pytest.raises(UsageError, match="already exists"):
        PrivateDir.create(tmp_path, "tree")


@pytest.mark.real
@needs_tools
def test_the_storage_dir_owner_swapping_the_tree_redirects_nothing(
        tmp_path: Path, no_leaks: None) -> None:
    """The owner of a storage_dir renames the run's tree the moment it is made and puts a
    symlink to a root-owned directory in its place: the run writes into its own tree only,
    removes it (by inode), and never touches the victim nor the attacker's symlink. If the
    swap lands between the mkdir and the open (microseconds), the run refuses, and the empty
    directory it made stays under the name the attacker gave it (it cannot prove which it is)."""
    with shared_dir() as shared:
        storage, victim = shared / "storage", shared / "victim"
        storage.mkdir()
        give(storage)
        victim.mkdir()
        (victim / "precious").write_text("keep")
        d = small_dict(hosts=[{"name": "host1", "storage_dir": str(storage)}])
        watch = INotify()  # anything root creates or deletes in the victim, even briefly
        watch.add_watch(victim, flags.CREATE | flags.DELETE | flags.MOVED_TO)
        refused = False
        with attacker(SWAP_TREE, str(storage), str(victim)) as said:
            try:
                run_scenario(parse_scenario(d), tmp_path / "run", "real")
            except CowbenchError as err:  # the swap landed between mkdir and open
                assert "replaced while it was being created" in str(err)
                refused = True
        assert any(line == "swapped" for line in said), said
        assert [e.name for e in watch.read(timeout=0)] == []
        watch.close()
        assert sorted(os.listdir(victim)) == ["precious"]
        assert (victim / "precious").read_text() == "keep"
        links = [n for n in os.listdir(storage) if (storage / n).is_symlink()]
        dirs = [n for n in os.listdir(storage) if n not in links]
        assert links, os.listdir(storage)
        assert dirs == [] or (refused and len(dirs) == 1
                              and os.listdir(storage / dirs[0]) == []), dirs


def test_a_run_directory_another_user_could_swap_is_refused(tmp_path: Path) -> None:
    """root writes run.json and raw/ by name: not below a directory another user can write
    (a sticky /tmp is fine: others cannot rename what root made there)."""
    with shared_dir() as shared:
        theirs, open_to_all = shared / "theirs", shared / "open"
        theirs.mkdir()
        give(theirs)
        open_to_all.mkdir()
        open_to_all.chmod(0o777)
        scenario = tmp_path / "s.yaml"
        scenario.write_text(yaml.safe_dump(small_dict()))
        for out, why in ((theirs / "run", f"owned by uid {NOBODY}"),
                         (open_to_all / "a" / "run", "writable by every user")):
            proc = cowbench_cli("run", str(scenario), "--backend", "sim", "--out", str(out))
            assert proc.returncode == 2 and why in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr and not out.exists()
        assert os.listdir(theirs) == [] and os.listdir(open_to_all) == []
        ok = shared / "mine"
        assert cowbench_cli("run", str(scenario), "--backend", "sim", "--out",
                        str(ok)).returncode == 0


def test_a_run_directory_named_by_a_symlink_is_refused(tmp_path: Path) -> None:
    """Another user's link in a sticky shared directory (/tmp) chose where root's run went (a
    user's checks: the run wrote its results into the link's target); a symlink as --out is
    refused, and nothing is written where it points."""
    with shared_dir() as shared:
        target = tmp_path / "target"
        target.mkdir()
        link = shared / "planted"
        link.symlink_to(target)
        scenario = tmp_path / "s.yaml"
        scenario.write_text(yaml.safe_dump(small_dict()))
        proc = cowbench_cli("run", str(scenario), "--backend", "sim", "--out", str(link))
        assert proc.returncode == 2 and "is a symlink" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and os.listdir(target) == []


# -- images from files --------------------------------------------------------------------------

def test_etc_shadow_is_refused(tmp_path: Path) -> None:
    proc = cowbench_cli("validate", str(_image_scenario(tmp_path, "/etc/shadow")))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "images[0].path" in proc.stderr and "under /etc" in proc.stderr


@pytest.mark.parametrize("name,why", [
    ('json:{"file":{"driver":"file","filename":"/etc/shadow"}}', "qemu protocol or json:"),
    ("nbd:unix:/tmp/x.sock", "qemu protocol"),
    ("file:img.raw", "qemu protocol"),
    ("http:img", "qemu protocol"),
])
def test_protocol_filenames_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        name: str, why: str) -> None:
    """A decoy file of that very name exists: it is not what qemu would have opened."""
    monkeypatch.chdir(tmp_path)
    if "/" not in name:
        Path(name).write_bytes(b"\0" * 65536)
    assert why in _refusal(_image_scenario(tmp_path, name))


def test_special_files_are_refused_without_being_read(tmp_path: Path) -> None:
    fifo, dev, link = tmp_path / "fifo", tmp_path / "null", tmp_path / "link"
    os.mkfifo(fifo)  # opening it for reading would block for ever
    os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (tmp_path / "real.raw").write_bytes(b"\0" * 65536)
    link.symlink_to(tmp_path / "real.raw")
    t0 = time.monotonic()
    for path, why in ((fifo, "not a regular file"), (dev, "not a regular file"),
                      (link, "symbolic link"), (tmp_path / "missing", "no such file")):
        assert why in _refusal(_image_scenario(tmp_path, str(path))), path
    assert time.monotonic() - t0 < 10


def test_a_file_the_invoking_user_cannot_read_is_refused(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Under sudo, root does not read for the user a file the user could not read (in a
    directory the user can enter: tmp_path is root's alone, and the scenario must be
    readable for the image to be reached)."""
    monkeypatch.setenv("SUDO_UID", str(NOBODY))
    monkeypatch.setenv("SUDO_GID", str(NOBODY))
    with shared_dir() as d:
        secret = d / "secret.raw"
        secret.write_bytes(MARKER * 1000)
        secret.chmod(0o600)
        assert "not readable by the invoking user" in _refusal(_image_scenario(d, str(secret)))


@pytest.mark.real
@needs_tools
def test_a_file_of_another_user_needs_the_override(tmp_path: Path) -> None:
    image = tmp_path / "theirs.raw"
    image.write_bytes(b"\1" * (1 << 20))
    give(image)
    why = _refusal(_image_scenario(tmp_path, str(image)))
    assert f"owned by uid {NOBODY}" in why and "allow_untrusted_path" in why
    allowed = _image_scenario(tmp_path, str(image), allow_untrusted_path=True)
    s = resolve(load_scenario(allowed), str(allowed))
    assert s.images[0].virtual_size == 1 << 20


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_copies_are_never_more_readable_than_the_source(tmp_path: Path, no_leaks: None,
                                                        mode: int) -> None:
    image = tmp_path / "mine.qcow2"
    _qemu_img("create", "-f", "qcow2", str(image), "64M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 5 0 4M", str(image)],
                   check=True, capture_output=True)
    image.chmod(mode)
    d = yaml.safe_load(_image_scenario(tmp_path, str(image), "qcow2").read_text())
    d["real"] = {"keep_images": True}
    out = tmp_path / "run"
    run_scenario(resolve(parse_scenario(d)), out, "real")
    copies = [*(out / "work" / "glance").iterdir(),
              *(out / "work" / "hosts" / "host1" / "instances" / "_base").iterdir()]
    assert len(copies) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in copies} == {mode}
    assert stat.S_IMODE((out / "work").stat().st_mode) == 0o700


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and needle in p.read_bytes()]


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("k", [1, 5, 9])
def test_an_image_swapped_after_a_close_never_reaches_the_base(tmp_path: Path, no_leaks: None,
                                                               k: int) -> None:
    """The owner of the image's directory trades the image for a qcow2 backed by a root-only
    file after the k-th close and back two closes later (``hostile.SWAP_ON_CLOSE``): 1 lands
    inside the inspection, 5 between the inspection and the copy, 9 between the hash and the
    conversion of cowbench 0.1 (which put the secret into ``_base``). Now the file is opened
    once for the inspection and once for the copy that is inspected and converted: the run
    refuses or builds from what it inspected; the secret is nowhere in its tree."""
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "secret.raw"
    secret.write_bytes(MARKER * (64 * 1024 * 1024 // len(MARKER)) + b"\0" * 64)
    secret.chmod(0o600)
    with shared_dir() as shared:
        images = shared / "images"
        images.mkdir()
        give(images)
        good, evil = images / "user.qcow2", images / "evil.qcow2"
        _qemu_img("create", "-f", "qcow2", str(good), "64M")
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 9 0 8M", str(good)],
                       check=True, capture_output=True)
        _qemu_img("create", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(evil), "64M")
        give(good), give(evil)
        d = yaml.safe_load(_image_scenario(tmp_path, str(good), "qcow2",
                                           allow_untrusted_path=True).read_text())
        d["real"] = {"keep_images": True}
        out = tmp_path / "run"
        with attacker(SWAP_ON_CLOSE, str(images), "user.qcow2", "evil.qcow2", str(k),
                      last_close=images / ".last-close") as said:
            try:
                run_scenario(resolve(parse_scenario(d)), out, "real")
            except CowbenchError as err:
                assert "backing file" in str(err) or "changed since" in str(err), err
        assert k > 5 or "swapped" in said, said  # cowbench now closes it 6 times in all
    if out.exists():
        assert _files_holding(out, MARKER) == []


def _map_bomb(path: Path) -> None:
    """384-640 KiB of qcow2 whose every L1 entry names one L2 table whose every entry names
    one data cluster: ``qemu-img map`` would print 40960 x 8192 entries (tens of GB)."""
    _qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", str(path), "20T")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 64k", str(path)],
                   check=True, capture_output=True)
    with open(path, "r+b") as f:
        hdr = f.read(72)
        (l1_size,), (l1_off,) = struct.unpack(">I", hdr[36:40]), struct.unpack(">Q", hdr[40:48])
        f.seek(l1_off)
        l1_0 = f.read(8)
        l2_off = struct.unpack(">Q", l1_0)[0] & 0x00FFFFFFFFFFFE00
        f.seek(l2_off)
        l2_0 = f.read(8)
        f.seek(l2_off)
        f.write(l2_0 * 8192)
        f.seek(l1_off)
        f.write(l1_0 * l1_size)


@pytest.mark.real
@needs_tools
def test_a_map_bomb_is_stopped_by_the_output_cap(tmp_path: Path) -> None:
    image = tmp_path / "bomb.qcow2"
    _map_bomb(image)
    assert image.stat().st_size < 1 << 20
    t0 = time.monotonic()
    why = _refusal(_image_scenario(tmp_path, str(image), "qcow2"))
    assert "was stopped by SIGXFSZ" in why and "MiB of output" in why
    assert time.monotonic() - t0 < 30


@pytest.mark.real
@needs_tools
def test_an_empty_2eib_image_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``qemu-img map`` walks its whole L1 table (minutes, unbounded before): under the CPU
    limit and the timeout (both shortened here) it is refused in seconds."""
    monkeypatch.setattr(cowbench.tools, "UNTRUSTED_CPU_S", 1)
    monkeypatch.setattr(cowbench.tools, "INSPECT_TIMEOUT_S", 5)
    image = tmp_path / "huge.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", str(image), "2E")
    t0 = time.monotonic()
    why = _refusal(_image_scenario(tmp_path, str(image), "qcow2"))
    assert "was stopped by" in why or "took longer than 5 s" in why
    assert time.monotonic() - t0 < 20


@pytest.mark.real
@needs_tools
def test_the_conversion_runs_under_the_inspection_limits(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from real.world.backend import fetch_to_cache

    limits = tmp_path / "limits"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "qemu-img"
    fake.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                    f"shutil.copy('/proc/self/limits', {str(limits)!r})\nsys.exit(1)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    src = tmp_path / "img.qcow2"
    src.write_bytes(b"\0" * 4096)
    with pytest.raises(CowbenchError):
        fetch_to_cache(src, "qcow2", tmp_path / "base" / "x", RawLog(tmp_path / "raw"),
                       untrusted=True)
    table = {line[:26].strip(): line[26:].split() for line in limits.read_text().splitlines()}
    assert table["Max cpu time"][:2] == ["30", "30"]
    assert table["Max address space"][:2] == [str(1 << 30)] * 2
    assert not list((tmp_path / "base").iterdir())


def test_gc_removes_a_recorded_tree_only_at_its_name_and_owned_by_us(tmp_path: Path) -> None:
    """Never by inode alone: a tree removed by someone else frees its inode, which another
    directory in the parent may take (another user's: gc removed it and its files). One moved
    to another name, or owned by another user, is left where it is."""
    from cowbench.fdtree import remove_recorded

    moved = tmp_path / "cowbench-aaaa"
    moved.mkdir()
    st = moved.stat()
    moved.rename(tmp_path / "userdir")  # the same inode under another name
    (tmp_path / "userdir" / "data.txt").write_text("theirs")
    assert not remove_recorded(str(tmp_path), "cowbench-aaaa", st.st_dev, st.st_ino)
    assert (tmp_path / "userdir" / "data.txt").read_text() == "theirs"
    theirs = tmp_path / "cowbench-bbbb"
    theirs.mkdir()
    (theirs / "data.txt").write_text("theirs")
    os.chown(theirs, 1234, 1234)
    st = theirs.stat()
    assert not remove_recorded(str(tmp_path), "cowbench-bbbb", st.st_dev, st.st_ino)
    assert (theirs / "data.txt").exists()
    mine = tmp_path / "cowbench-cccc"
    (mine / "sub").mkdir(parents=True)
    st = mine.stat()
    assert remove_recorded(str(tmp_path), "cowbench-cccc", st.st_dev, st.st_ino)
    assert not mine.exists()


def test_gc_unlinks_a_recorded_partial_file_only_if_it_is_still_that_file(
        tmp_path: Path) -> None:
    """fio's partial JSON, recorded in a run's lease: gc unlinks it at its name while it is the
    file the run made; renamed into place (``output.json``, complete), replaced by another
    file or a symlink, or owned by another user, it is left alone."""
    from cowbench.fdtree import unlink_recorded

    def made(name: str) -> os.stat_result:
        (tmp_path / name).write_text("{")
        return (tmp_path / name).stat()

    st = made(".output.json.part")
    (tmp_path / ".output.json.part").rename(tmp_path / "output.json")
    assert not unlink_recorded(str(tmp_path), ".output.json.part", st.st_dev, st.st_ino)
    assert (tmp_path / "output.json").exists()
    st = made("b.part")
    (tmp_path / "b.part").unlink()
    (tmp_path / "b.part").symlink_to(tmp_path / "output.json")
    assert not unlink_recorded(str(tmp_path), "b.part", st.st_dev, st.st_ino)
    assert (tmp_path / "b.part").is_symlink()
    st = made("c.part")
    os.chown(tmp_path / "c.part", 1234, 1234)
    assert not unlink_recorded(str(tmp_path), "c.part", st.st_dev, st.st_ino)
    st = made("d.part")
    assert unlink_recorded(str(tmp_path), "d.part", st.st_dev, st.st_ino)
    assert not (tmp_path / "d.part").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.part", "c.part", "output.json"]


@needs_tools
@pytest.mark.real
def test_gc_leaves_the_tools_of_a_live_process_that_took_a_dead_runs_pid(tmp_path: Path) -> None:
    """A dead run named its trees to tools as /proc/<pid>/fd/<fd>/; when its pid has been
    taken since (pids wrap), a tool started after the pid's new holder and naming such a path
    is the new holder's: gc stopped a live run's qemu-nbd and fio so. A tool naming the dead
    run's tree by its real path is still stopped."""
    import subprocess

    from cowbench.lease import _stop_processes, start_ticks
    from cowbench.tools import which

    me = os.getpid()  # the pid's present holder, alive, started before the tools below
    dead = {"pid": me, "start_ticks": 1, "trees": [
        {"fd_path": f"/proc/{me}/fd/987/", "parent": str(tmp_path), "name": "cowbench-dead"}]}
    ours_now = f"/proc/{me}/fd/987/x"
    theirs = str(tmp_path / "cowbench-dead" / "x")

    def tool(path: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([which("fio"), "--name=t", "--ioengine=null", "--size=1m",
                                 "--time_based", "--runtime=30", f"--filename={path}",
                                 "--output=/dev/null"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    live, stale = tool(ours_now), tool(theirs)
    try:
        deadline = time.monotonic() + 10
        while (start_ticks(live.pid) is None or start_ticks(stale.pid) is None) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        stopped = _stop_processes(dead)
        assert live.pid not in stopped and live.poll() is None
        assert stale.pid in stopped
    finally:
        for p in (live, stale):
            p.kill()
            p.wait()
