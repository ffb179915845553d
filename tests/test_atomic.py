from __future__ import annotations

from pathlib import Path

import pytest

from fpkit.atomic import atomic_write


def test_a_written_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing changes until the write is done
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_a_failed_write_leaves_the_old_file_and_no_leftover(tmp_path: Path) -> None:
    target = tmp_path / "cache.npy"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target, ".npy") as tmp:
        assert tmp.name == "cache.npy.tmp.npy"
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
