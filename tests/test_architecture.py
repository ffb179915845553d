"""The layers of docs/architecture.md: a module imports only from its own layer or the ones below."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fpkit"

# Lower index = lower layer; as drawn in docs/architecture.md.
LAYERS = [
    {"errors", "config", "device", "interrupt", "atomic", "progress", "heap"},
    {"audio", "features", "augment"},
    {"model", "loss", "fingerprint"},
    {"db"},
    {"train", "evaluation", "monitor", "ray_engine"},
    {"cli", "__main__"},
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: in no layer of docs/architecture.md")


def fpkit_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fpkit."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fpkit.")}
    return found


def test_every_module_imports_only_its_layer_and_below() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("fpkit", *path.relative_to(PACKAGE).with_suffix("").parts))
        if name == "fpkit.__init__":
            continue  # the front door re-exports from every layer
        for imported in fpkit_imports(path):
            if layer_of(imported) > layer_of(name):
                wrong.append(f"{name} imports {imported}")
    assert not wrong


def test_train_and_evaluation_stay_apart() -> None:
    for package, other in (("train", "evaluation"), ("evaluation", "train")):
        for path in (PACKAGE / package).rglob("*.py"):
            assert not [m for m in fpkit_imports(path) if m.startswith(f"fpkit.{other}")], path
    for path in (PACKAGE / "train").rglob("*.py"):
        assert not [m for m in fpkit_imports(path) if m.startswith("fpkit.db")], path


def test_the_store_is_reached_only_through_database() -> None:
    # The store's own tests, and the benchmark that measures the store and its index on synthetic
    # vectors without a model, use it directly; commands, applications and their tests do not.
    users = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "db"]
    users += [p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "index_search.py"]
    users += sorted((ROOT / "tests").glob("test_cli_*.py"))
    for path in users:
        tree = ast.parse(path.read_text())
        attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert "fpkit.db.store" not in fpkit_imports(path), path
        assert not attributes & {"store", "_store"}, path
