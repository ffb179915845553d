"""The ground-truth table for real query recordings: which song each one is, and where it starts.

A UTF-8 CSV file with a header naming at least the columns ``query``, ``song`` and ``start_s``
(more columns are allowed and ignored)::

    query,song,start_s
    phone/take1.wav,artist__title.ogg,73.5
    phone/street.wav,,

``query`` is a file path relative to the queries folder. ``song`` names a database song by
the end of its stored path (a file name, or as many trailing folders as make it unique);
empty means the recording is of no song in the database, and then ``start_s`` is empty too.
``start_s`` is where the recording begins in the song, seconds.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from fpkit.errors import FpkitError

COLUMNS = ("query", "song", "start_s")


class TruthError(FpkitError):
    """A ground-truth table that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class TruthRow:
    query: Path  # the recording, resolved against the queries folder
    song: str | None  # as written in the table; None: not in the database
    start_s: float | None  # None exactly when `song` is None
    line: int  # 1-based line in the CSV file, for messages


def read_truth(path: Path, queries_dir: Path) -> list[TruthRow]:
    """Parse and check the table; every query file must exist under `queries_dir`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise TruthError(f"{path}: cannot read ground truth ({getattr(err, 'strerror', None) or err})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise TruthError(
            f"{path}: line 1: header must name the columns {', '.join(COLUMNS)} (missing {', '.join(missing)})"
        )
    reader.fieldnames = header
    rows: list[TruthRow] = []
    seen: dict[Path, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record or any(record.get(c) is None for c in COLUMNS):
            raise TruthError(f"{path}: line {line}: expected {len(header)} fields")
        row = _parse_row(path, line, queries_dir, {c: (record[c] or "").strip() for c in COLUMNS})
        if row.query in seen:
            raise TruthError(f"{path}: line {line}: {row.query} is already listed on line {seen[row.query]}")
        seen[row.query] = line
        rows.append(row)
    if not rows:
        raise TruthError(f"{path}: no query rows")
    return rows


def _parse_row(path: Path, line: int, queries_dir: Path, fields: dict[str, str]) -> TruthRow:
    where = f"{path}: line {line}"
    if not fields["query"]:
        raise TruthError(f"{where}: empty query file name")
    query = queries_dir / fields["query"]
    if not query.is_file():
        raise TruthError(f"{where}: query file {query} not found")
    song = fields["song"] or None
    start: float | None = None
    if fields["start_s"]:
        try:
            start = float(fields["start_s"])
        except ValueError:
            raise TruthError(f"{where}: start_s {fields['start_s']!r} is not a number") from None
        if not math.isfinite(start) or start < 0:
            raise TruthError(f"{where}: start_s must be a time in seconds >= 0, got {fields['start_s']!r}")
    if song is None and start is not None:
        raise TruthError(f"{where}: start_s given for a query with no song")
    if song is not None and start is None:
        raise TruthError(f"{where}: song {song!r} needs a start_s")
    return TruthRow(query, song, start, line)


def match_song(name: str, stored_paths: list[str]) -> list[int]:
    """Indexes of the stored paths that are `name` or end with "/" + `name`."""
    suffix = "/" + name.replace("\\", "/").lstrip("/")
    return [i for i, p in enumerate(stored_paths) if p == name or p.replace("\\", "/").endswith(suffix)]
