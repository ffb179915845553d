"""fpkit: neural audio fingerprinting (Chang et al., ICASSP 2021) as a command-line toolkit.

    import fpkit
    model = fpkit.load_model()                      # the shipped model, or load_model("mine.pt")
    with fpkit.Database.open_or_create("fpkit-db", model) as db:
        db.add_files(["songs/"], model)
        db.update_index(model.config.index)
        print(fpkit.Searcher(db, model).search_file("clip.wav").match)

Every failure fpkit expects is an `fpkit.FpkitError` whose message names the file or setting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fpkit.errors import FpkitError

if TYPE_CHECKING:
    from fpkit.db import Database, Searcher
    from fpkit.model import load_model

__version__ = "0.1.0"

__all__ = ["Database", "FpkitError", "Searcher", "__version__", "load_model"]

# Imported on first use, so that `fpkit --help` does not wait for torch and FAISS.
_LAZY = {"Database": "fpkit.db", "Searcher": "fpkit.db", "load_model": "fpkit.model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fpkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
