"""Files a real run is done with are unlinked beside its last digests
(``real.world.backend.unlinking``): side by side, each ``(path, wait)`` only once its wait
returns, all of them by the end of the body; one already gone or not removable is left to the
tree's removal."""

from __future__ import annotations

import threading
from pathlib import Path

from real.world.backend import unlinking


def test_files_go_at_once_but_each_after_its_wait(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("overlay", "image", "base")]
    for f in files:
        f.write_bytes(b"x")
    digest_done = threading.Event()
    with unlinking([files[0], (files[1], digest_done.wait), files[2]]):
        try:  # the overlay and the base go at once; the image waits for its digest
            for _ in range(200):
                if not files[0].exists() and not files[2].exists():
                    break
                threading.Event().wait(0.01)
            threading.Event().wait(0.05)  # room for a wrong early unlink of the image
            assert not files[0].exists() and not files[2].exists()
            assert files[1].exists()
        finally:  # a failed assertion must not leave the body's end waiting forever
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
