"""Fingerprint databases: the on-disk store, its FAISS index, and sequence search.

db = Database.open_or_create("fpkit-db", model)     # model: fpkit.model.LoadedModel
# or: with Database.open_for("fpkit-db", None) as opened:  # opened.db with its own model, opened.model
report = db.add_files(["songs/"], model)             # AddReport: stored, skipped, failed
db.update_index(model.config.index)
result = Searcher(db, model).search_file("clip.wav")  # SearchResult: match, candidates
"""

from fpkit.db.database import AddReport, Database, DatabaseError, Failed, ModelMismatch, OpenedDatabase, Skipped
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
    "SearchResult",
    "Searcher",
    "Skipped",
]
