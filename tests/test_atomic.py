from __future__ import annotations

import ast
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


def test_no_other_module_moves_a_written_file_into_place() -> None:
    """Every artifact goes through `atomic_write`: no module or benchmark hand-rolls temp file + rename."""
    root = Path(__file__).resolve().parent.parent
    moves = []
    for path in [*(root / "fpkit").rglob("*.py"), *(root / "benchmarks").glob("*.py")]:
        if path == root / "fpkit" / "atomic.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, on = node.func.attr, node.func.value
            module = on.id if isinstance(on, ast.Name) else ""
            path_replace = name == "replace" and len(node.args) == 1 and not node.keywords  # str.replace takes two
            if name == "rename" or (module in ("os", "shutil") and name in ("replace", "move")) or path_replace:
                moves.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not moves
