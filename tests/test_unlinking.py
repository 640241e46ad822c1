"""Files a real run is done with are unlinked in a thread beside its last digests
(``real.world.backend.unlinking``): in order, each ``(path, wait)`` only once its wait returns,
all of them by the end of the body; one already gone or not removable is left to the tree's
removal."""

from __future__ import annotations

import threading
from pathlib import Path

from real.world.backend import unlinking


def test_files_go_in_order_each_after_its_wait(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("overlay", "image", "base")]
    for f in files:
        f.write_bytes(b"x")
    digest_done = threading.Event()
    with unlinking([files[0], (files[1], digest_done.wait), files[2]]):
        for _ in range(200):  # the first goes at once; the image waits for its digest
            if not files[0].exists():
                break
            threading.Event().wait(0.01)
        assert not files[0].exists() and files[1].exists() and files[2].exists()
        digest_done.set()
    assert not any(f.exists() for f in files)


def test_a_file_already_gone_or_a_failed_wait_stops_nothing(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.write_bytes(b"x")
    later = tmp_path / "later"
    later.write_bytes(b"x")

    def fails() -> None:
        raise OSError("the digest could not read it")

    with unlinking([tmp_path / "gone", (kept, fails), later]):
        pass
    assert kept.exists() and not later.exists()
