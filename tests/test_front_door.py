"""`import fpkit`: the library's front door, cheap to open (the command line starts through it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fpkit

ROOT = Path(__file__).resolve().parent.parent


def test_import_fpkit_loads_no_heavy_library_until_a_name_is_used() -> None:
    code = (
        "import sys, fpkit\n"
        "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'faiss', 'numpy'})\n"
        "print(heavy(), fpkit.FpkitError.__module__)\n"
        "print(fpkit.Database.__module__, fpkit.Searcher.__module__, fpkit.load_model.__module__, heavy())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    before, after = done.stdout.splitlines()
    assert before == "[] fpkit.errors"
    assert after == "fpkit.db.database fpkit.db.search fpkit.model ['faiss', 'numpy', 'torch']"


def test_the_front_door_names_what_it_exports() -> None:
    from fpkit.db import Database, Searcher
    from fpkit.errors import FpkitError
    from fpkit.model import load_model

    assert (fpkit.Database, fpkit.Searcher, fpkit.load_model, fpkit.FpkitError) == (
        Database,
        Searcher,
        load_model,
        FpkitError,
    )
    assert {"Database", "Searcher", "load_model", "FpkitError"} <= set(dir(fpkit))
    with pytest.raises(AttributeError, match="no attribute 'search'"):
        fpkit.search  # noqa: B018 - the attribute access is the test
