"""Fingerprint databases: the on-disk store, its FAISS index, and sequence search.

db = Database.open_or_create("fpkit-db", model)     # model: fpkit.model.LoadedModel
# or: with Database.open_for("fpkit-db", None) as opened:  # opened.db, its own opened.model, opened.config
report = db.add_files(["songs/"], model)             # AddReport: stored, skipped, failed
db.update_index(model.config.index)
result = Searcher(db, model).search_file("clip.wav")  # SearchResult: match, candidates

The store (`fpkit.db.store`) is private to this package: everything else goes through `Database`.
"""

from fpkit.db.database import (
    AddReport,
    Database,
    DatabaseError,
    Failed,
    ModelMismatch,
    OpenedDatabase,
    RepairReport,
    Skipped,
)
from fpkit.db.search import Match, Searcher, SearchResult
from fpkit.db.store import FileRecord

__all__ = [
    "AddReport",
    "Database",
    "DatabaseError",
    "Failed",
    "FileRecord",
    "Match",
    "ModelMismatch",
    "OpenedDatabase",
    "RepairReport",
    "SearchResult",
    "Searcher",
    "Skipped",
]
