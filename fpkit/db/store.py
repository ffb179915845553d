"""The on-disk fingerprint store: vectors, a table of files, the model that made them.

A store is a folder:

    manifest.json          what is committed: row and song counts, file names, model id, index
    model.pt               a copy of the checkpoint, so the folder is self-contained
    vectors-<gen>.f16      (rows, d) float16, row-major, append-only
    vectors-<gen>.opq<m>   or (rows, m) uint8 optimized product-quantizer codes (`fpkit.db.rescore`)
    codebook-<gen>.npz     their codebook: rotation (d, d), centroids (m, 256, d / m), float32
    files-<gen>.jsonl      one `FileRecord` per song, append-only
    index-<n>.faiss        the FAISS index over the rows (see `fpkit.db.index`), when there is one

Crash safety comes from the manifest alone: it is replaced atomically (`os.replace`) after
everything it points at is written and synced, and readers look only at the rows and bytes it
counts. An interrupted writer leaves bytes past those counts, which the next writer cuts off,
and files that no manifest names, which the next commit deletes. Starting over (`start_over`)
writes a new generation of files, so the old ones stay valid until the new manifest lands.
One writer at a time holds an advisory lock on `.lock`.

Every open checks the files against the manifest (`survey`: sizes, row counts, a parseable
files table, the index and model files present) and refuses a damaged store in one line
naming the file; `Store.salvage` keeps what is intact (docs/database.md, "When something goes
wrong").
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from fpkit.atomic import TMP_SUFFIX, atomic_write
from fpkit.config import AudioConfig
from fpkit.db.rescore import (
    CENTROIDS,
    ENCODE_BLOCK,
    FLOAT16,
    RESCORE_MODES,
    Float16Rows,
    OPQCodes,
    RowCodec,
    StoredRows,
    code_width,
)
from fpkit.errors import FpkitError
from fpkit.interrupt import uninterruptible

log = logging.getLogger(__name__)

STORE_FORMAT = 1
CODES_FORMAT = 2  # a store of opq codes: fpkit versions from before them refuse it instead of misreading its rows
MANIFEST = "manifest.json"
MODEL_FILE = "model.pt"
LOCK_FILE = ".lock"
_GENERATED_PREFIXES = ("vectors-", "files-", "index-", "codebook-")
_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "model_id": str,
    "model_file": str,
    "vectors": str,
    "files": str,
    "dim": int,
    "rows": int,
    "songs": int,
    "files_bytes": int,
    "hop_s": (int, float),
    "index": (dict, type(None)),
}


class StoreError(FpkitError):
    """A store folder that cannot be used as asked; the message names the folder."""


class StoreDamaged(StoreError):
    """A store whose files do not hold what its manifest says; `Store.salvage` keeps what is intact."""


@dataclass(frozen=True)
class FileRecord:
    """One stored song: its fingerprints are rows [first_row, first_row + count)."""

    path: str  # absolute path when it was stored
    duration_s: float
    first_row: int
    count: int
    sha: str  # content hash of the decoded audio (`fpkit.fingerprint.content_hash`)
    size: int  # file bytes and modification time: a re-run skips an unchanged path unread
    mtime_ns: int


@dataclass(frozen=True)
class Survey:
    """A store's files measured against its manifest (`survey`); a sound store has no problems."""

    intact: list[FileRecord]  # songs whose table line and fingerprint rows are whole, in storage order
    line_ends: list[int]  # bytes of the files table up to the end of each intact song's line
    prefix: bool  # the intact songs are the table's first lines, with rows contiguous from 0
    held_rows: int  # whole fingerprint rows in the vectors file (the manifest's count at most)
    codec: RowCodec | None  # how the rows are kept; None when the codebook they need is unreadable
    lost: list[str]  # paths of the songs whose record is readable but whose rows are not stored whole
    unreadable: list[int]  # files-table lines (from 1) that are not a song record
    index_damaged: bool  # an index file is missing, or the index counts rows that are not stored
    model_missing: bool
    problems: list[str]  # one line each, naming the file


@dataclass(frozen=True)
class Salvage:
    """What `Store.salvage` found and kept; nothing is written until the store commits."""

    store: Store  # writable; holds the intact songs, or none after `start_over`
    problems: list[str]  # what the check found, one line each naming the file
    lost: list[str]  # paths of the songs no longer stored
    unreadable: int  # songs dropped whose record could not be read (their paths are unknown)
    rows_cut: int  # fingerprint rows dropped
    index_dropped: bool  # the manifest names no index now; the next index update rebuilds it from the store
    model_missing: bool  # the model copy must be restored (`restore_model`)


class Store:
    """Fingerprints and files of one folder; open read-only, or writable under the lock."""

    def __init__(
        self, root: Path, manifest: dict[str, Any], lock: IO[bytes] | None, files: list[FileRecord], codec: RowCodec
    ) -> None:
        self.root = root
        self.manifest = manifest
        self._lock = lock
        self._codec = codec
        self.files = list(files)
        self._by_sha = {f.sha: f for f in self.files}
        self._by_path = {f.path: f for f in self.files}
        self._vectors: StoredRows | None = None
        self._out: IO[bytes] | None = None
        self._table: IO[str] | None = None

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, model_file: str | Path, model_id: str, audio: AudioConfig, dim: int) -> Store:
        """Make a new, empty, writable store in `root` (created if missing, must hold no store)."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise StoreError(f"{root}: already holds a database")
        root.mkdir(parents=True, exist_ok=True)
        lock = _acquire(root)
        _atomic_copy(Path(model_file), root / MODEL_FILE)
        gen = _new_generation()
        manifest: dict[str, Any] = {
            "format": STORE_FORMAT,
            "model_id": model_id,
            "model_file": MODEL_FILE,
            "sample_rate": audio.sample_rate,
            "segment_s": audio.segment_s,
            "hop_s": audio.hop_s,
            "dim": dim,
            "dtype": FLOAT16,
            "rescore": FLOAT16,
            "codebook": None,
            "vectors": f"vectors-{gen}.f16",
            "files": f"files-{gen}.jsonl",
            "rows": 0,
            "songs": 0,
            "files_bytes": 0,
            "index": None,
        }
        store = cls(root, manifest, lock, [], Float16Rows(dim))
        store.commit()
        return store

    @classmethod
    def open(cls, root: str | Path, writable: bool = False) -> Store:
        """Open an existing store; `writable` takes the lock and cuts off an interrupted run's tail.

        Raises `StoreDamaged` naming the file when the files do not hold what the manifest says.
        """
        root = Path(root)
        manifest = read_manifest(root)
        lock = _acquire(root) if writable else None
        try:
            if lock is not None:
                manifest = read_manifest(root)  # another writer may have committed while we waited
            found = survey(root, manifest)
            if found.problems:
                raise StoreDamaged(damage_message(root, manifest, found))
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        assert found.codec is not None  # an unreadable codebook is a problem
        store = cls(root, manifest, lock, found.intact, found.codec)
        if writable:
            store._truncate_to_manifest()
        return store

    @classmethod
    def salvage(cls, root: str | Path, keep_songs: bool = True) -> Salvage:
        """Open `root` for writing whatever its check finds, keeping every intact song.

        Intact songs that are the table's first lines stay where they are (the damaged tail is
        cut off at the next commit); otherwise they are copied into a new generation of files.
        An index that is damaged or counts rows no longer stored is dropped, for the next index
        update to rebuild from the stored fingerprints. `keep_songs=False` starts over instead.
        Nothing is on disk until `commit`.
        """
        root = Path(root)
        read_manifest(root)
        lock = _acquire(root)
        try:
            manifest = read_manifest(root)
            found = survey(root, manifest)
            if found.codec is None:  # no row can be read without it: every song is lost, and starts over as float16
                manifest["codebook"] = None
            store = cls(root, manifest, lock, found.intact, found.codec or Float16Rows(int(manifest["dim"])))
            return store._keep(found, keep_songs)
        except BaseException:
            lock.close()
            raise

    def _keep(self, found: Survey, keep_songs: bool) -> Salvage:
        """Make this store hold the intact songs of `found` (or none), uncommitted."""
        rows_before, meta = self.rows, self.index_meta
        if not keep_songs:
            self.start_over(keep_codebook=False)  # asked for: nothing counts as lost
        elif found.prefix and found.codec is not None:
            kept_bytes = found.line_ends[-1] if found.intact else 0
            self.manifest.update(rows=sum(f.count for f in self.files), songs=len(self.files), files_bytes=kept_bytes)
        else:
            old = self._stored(0, found.held_rows)  # the current generation as kept, before starting over
            self.start_over(keep_codebook=True)  # the rows are copied as they are
            for f in found.intact:
                self._append(replace(f, first_row=self.rows), old[f.first_row : f.first_row + f.count])
        moved = found.index_damaged or not found.prefix or not keep_songs
        if meta is not None and (moved or int(meta["rows"]) > self.rows):
            self.set_index(None)
        return Salvage(
            store=self,
            problems=found.problems,
            lost=found.lost if keep_songs else [],
            unreadable=len(found.unreadable) if keep_songs else 0,
            rows_cut=max(0, rows_before - self.rows) if keep_songs else 0,
            index_dropped=meta is not None and self.index_meta is None,
            model_missing=found.model_missing,
        )

    def restore_model(self, model_file: str | Path) -> None:
        """Copy a checkpoint in as the store's model (the caller checks it is the same model)."""
        self._require_writable()
        _atomic_copy(Path(model_file), self.root / MODEL_FILE)
        self.manifest["model_file"] = MODEL_FILE

    def close(self) -> None:
        self.close_writers()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading -------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def model_path(self) -> Path:
        return self.root / str(self.manifest["model_file"])

    @property
    def hop_s(self) -> float:
        return float(self.manifest["hop_s"])

    @property
    def index_meta(self) -> dict[str, Any] | None:
        meta = self.manifest.get("index")
        return dict(meta) if meta else None

    @property
    def rescore(self) -> str:
        """What the rows are to be kept as (`index.rescore`); databases from before the setting hold float16."""
        return str(self.manifest.get("rescore", FLOAT16))

    @property
    def kept_as(self) -> str:
        """What the rows are kept as now: float16 until an `opq` store has trained its codebook, then `rescore`."""
        return self._codec.mode

    @property
    def vectors(self) -> StoredRows:
        """All rows, (rows, d) when indexed, memory-mapped; includes rows appended but not yet committed."""
        if self._vectors is None:
            self._vectors = StoredRows(self._stored(0, self.rows), self._codec, self.dim)
        return self._vectors

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Fingerprints of rows [start, stop), (stop - start, d): float16 memory-mapped, or decoded codes."""
        return self._codec.decode(self._stored(start, stop))

    def _stored(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as kept, (stop - start, width), a read-only memory map."""
        codec = self._codec
        if stop <= start:
            return np.zeros((0, codec.width), dtype=codec.dtype)
        if self._out is not None:
            self._out.flush()
        return np.memmap(
            self.root / self.manifest["vectors"],
            dtype=codec.dtype,
            mode="r",
            offset=start * codec.width * codec.dtype.itemsize,
            shape=(stop - start, codec.width),
        )

    def gather_rows(self, rows: np.ndarray) -> np.ndarray:
        """Fingerprints of `rows` (ascending) as float32 (len(rows), d), read one block at a time.

        A sample touches nearly every page of the store, and one map of the whole store would keep
        them all resident (66 MB for a 36 h collection); each block's map is released in turn.
        """
        parts = [np.zeros((0, self.dim), dtype=np.float32)]
        for a in range(0, self.rows, ENCODE_BLOCK):
            lo, hi = np.searchsorted(rows, [a, a + ENCODE_BLOCK])
            if hi > lo:
                block = StoredRows(self._stored(a, int(rows[hi - 1]) + 1), self._codec, self.dim)
                parts.append(np.asarray(block[rows[lo:hi] - a], dtype=np.float32))
        return np.concatenate(parts)

    def song_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """First row (S,) and row count (S,) of every song, in storage order (first rows ascend)."""
        first = np.fromiter((f.first_row for f in self.files), dtype=np.int64, count=len(self.files))
        count = np.fromiter((f.count for f in self.files), dtype=np.int64, count=len(self.files))
        return first, count

    def find_content(self, sha: str) -> FileRecord | None:
        return self._by_sha.get(sha)

    def find_unchanged(self, path: str, size: int, mtime_ns: int) -> FileRecord | None:
        """The record stored from `path` when the file still has the same size and time."""
        record = self._by_path.get(path)
        if record is not None and record.size == size and record.mtime_ns == mtime_ns:
            return record
        return None

    # ---- writing -------------------------------------------------------------------------
    @uninterruptible  # a stop signal lands between songs, so everything appended can be committed
    def append(
        self, path: str, duration_s: float, sha: str, size: int, mtime_ns: int, prints: np.ndarray
    ) -> FileRecord:
        """Write one song's fingerprints (n, d); visible to readers after `commit`."""
        if prints.ndim != 2 or prints.shape[1] != self.dim:
            raise StoreError(f"{self.root}: expected fingerprints of shape (n, {self.dim}), got {prints.shape}")
        record = FileRecord(path, duration_s, self.rows, int(prints.shape[0]), sha, size, mtime_ns)
        self._append(record, self._codec.encode(prints))
        return record

    def _append(self, record: FileRecord, stored: np.ndarray) -> None:
        """Write a song's record and its rows as kept (n, width)."""
        self._require_writable()
        if self._out is None:
            self._out = open(self.root / self.manifest["vectors"], "ab")  # noqa: SIM115 - held across appends
            self._table = open(self.root / self.manifest["files"], "a", encoding="utf-8")  # noqa: SIM115
        assert self._table is not None
        self._out.write(np.ascontiguousarray(stored).tobytes())
        line = json.dumps(asdict(record)) + "\n"
        self._table.write(line)
        self.files.append(record)
        self._by_sha[record.sha] = record
        self._by_path[record.path] = record
        self.manifest["rows"] = self.rows + record.count
        self.manifest["songs"] = len(self.files)
        self.manifest["files_bytes"] = int(self.manifest["files_bytes"]) + len(line.encode("utf-8"))
        self._vectors = None

    def set_index(self, meta: dict[str, Any] | None) -> None:
        """Point the manifest at an index (its files already written); takes effect on `commit`."""
        self._require_writable()
        self.manifest["index"] = meta

    def set_rescore(self, mode: str) -> None:
        """Record what the rows are to be kept as (`fpkit.db.rescore.keep_rows_as`); takes effect on `commit`."""
        self._require_writable()
        self.manifest["rescore"] = mode

    def encode_rows(self, codec: OPQCodes) -> None:
        """Keep every row as `codec`'s codes from now on; written under new names, in effect at `commit`."""
        self._require_writable()
        gen = _new_generation()
        vectors, codebook = f"vectors-{gen}.{codec.mode}", f"codebook-{gen}.npz"
        with atomic_write(self.root / codebook, ".npz") as tmp:
            np.savez(tmp, rotation=codec.rotation, centroids=codec.centroids)
        with atomic_write(self.root / vectors) as tmp, open(tmp, "wb") as out:
            for a in range(0, self.rows, ENCODE_BLOCK):
                out.write(codec.encode(self.read_rows(a, min(self.rows, a + ENCODE_BLOCK))).tobytes())
        self.close_writers()
        self.manifest.update(vectors=vectors, codebook=codebook, dtype=codec.dtype.name, rescore=codec.mode)
        self._codec, self._vectors = codec, None

    def start_over(self, keep_codebook: bool) -> None:
        """Forget every song and the index, and the codebook unless kept; the old files stay valid until `commit`."""
        self._require_writable()
        self.close_writers()
        gen = _new_generation()
        if not keep_codebook:
            self._codec = Float16Rows(self.dim)
            self.manifest.update(codebook=None, dtype=FLOAT16)
        suffix = "f16" if self.kept_as == FLOAT16 else self.kept_as
        self.manifest.update(
            vectors=f"vectors-{gen}.{suffix}", files=f"files-{gen}.jsonl", rows=0, songs=0, files_bytes=0, index=None
        )
        self.files, self._by_sha, self._by_path, self._vectors = [], {}, {}, None

    @uninterruptible
    def commit(self) -> None:
        """Sync the data files, then atomically replace the manifest and delete unreferenced files."""
        self._require_writable()
        for name in ("vectors", "files"):
            target = self.root / self.manifest[name]
            target.touch()
        for handle in (self._out, self._table):
            if handle is not None:
                handle.flush()
                os.fsync(handle.fileno())
        self.manifest["format"] = STORE_FORMAT if self.kept_as == FLOAT16 else CODES_FORMAT
        _atomic_write_json(self.root / MANIFEST, self.manifest)
        self._truncate_to_manifest()  # bytes a salvage cut off
        self._collect_garbage()

    def close_writers(self) -> None:
        for handle in (self._out, self._table):
            if handle is not None:
                handle.close()
        self._out = self._table = None

    def _require_writable(self) -> None:
        if self._lock is None:
            raise StoreError(f"{self.root}: opened read-only")

    def _truncate_to_manifest(self) -> None:
        """Cut off what an interrupted writer appended after the last commit."""
        for name, size in (
            ("vectors", self.rows * self._codec.width * self._codec.dtype.itemsize),
            ("files", int(self.manifest["files_bytes"])),
        ):
            path = self.root / self.manifest[name]
            if path.exists() and path.stat().st_size > size:
                log.info("%s: discarding %d bytes past the last commit", path, path.stat().st_size - size)
                with open(path, "r+b") as f:
                    f.truncate(size)

    def _collect_garbage(self) -> None:
        keep = {self.manifest["vectors"], self.manifest["files"], self.manifest.get("codebook")}
        keep.update((self.manifest.get("index") or {}).get("files", []))
        for path in self.root.iterdir():
            stale = path.name.startswith(_GENERATED_PREFIXES) and path.name not in keep
            if stale or path.name.endswith(TMP_SUFFIX):
                path.unlink(missing_ok=True)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.is_dir():
        raise StoreError(f"{root}: no such database folder")
    if not path.exists():
        raise StoreError(f"{root}: not an fpkit database (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in (STORE_FORMAT, CODES_FORMAT):
        raise StoreError(f"{path}: unknown database format")
    index = manifest.get("index")
    index_ok = index is None or (
        isinstance(index, dict) and isinstance(index.get("files"), list) and isinstance(index.get("rows"), int)
    )
    for key, kind in _MANIFEST_TYPES.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (key == "index" and not index_ok):
            raise StoreError(f"{path}: unreadable manifest (no valid {key!r}); index the songs again into a new folder")
    rescore, codebook = manifest.get("rescore", FLOAT16), manifest.get("codebook")
    if rescore not in RESCORE_MODES or not (codebook is None or (isinstance(codebook, str) and code_width(rescore))):
        raise StoreError(f"{path}: keeps its rows as {rescore!r} with codebook {codebook!r}, unknown to this fpkit")
    return manifest


def survey(root: Path, manifest: dict[str, Any]) -> Survey:
    """Check a store's files against its manifest: sizes, row counts, the files table, index and model files."""
    rows, songs, want = int(manifest["rows"]), int(manifest["songs"]), int(manifest["files_bytes"])
    problems: list[str] = []
    vectors = root / manifest["vectors"]
    codec, held = _row_codec(root, manifest), 0
    if codec is None:
        problems.append(f"{root / manifest['codebook']}: missing or unreadable (the codebook of the stored codes)")
    else:
        row_bytes = codec.width * codec.dtype.itemsize
        held = min(rows, vectors.stat().st_size // row_bytes) if vectors.exists() else 0
        if not vectors.exists() and rows:
            problems.append(f"{vectors}: missing (the manifest counts {rows} fingerprint rows)")
        elif held < rows:
            problems.append(f"{vectors}: holds {held} of the {rows} fingerprint rows the manifest counts (cut short)")
    table = root / manifest["files"]
    data = b""
    if table.exists():
        with open(table, "rb") as f:
            data = f.read(want)
    if not table.exists() and want:
        problems.append(f"{table}: missing (the manifest counts {songs} songs)")
    elif len(data) < want:
        problems.append(f"{table}: holds {len(data)} of the {want} bytes the manifest counts (cut short)")

    intact: list[FileRecord] = []
    line_ends: list[int] = []
    lost: list[str] = []
    unreadable: list[int] = []
    prefix, hole, next_row, end, outside = True, False, 0, 0, 0
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the text after the last newline
    for number, line in enumerate(lines, start=1):
        end += len(line) + 1
        record = _parse_record(line) if end <= len(data) else None  # a last line without its newline is cut short
        if record is None:
            unreadable.append(number)
            hole = True
        elif record.first_row < next_row or record.first_row + record.count > held:
            lost.append(record.path)
            outside = outside or number
            hole = True
        else:
            prefix = prefix and not hole and record.first_row == next_row
            intact.append(record)
            line_ends.append(end)
            next_row = record.first_row + record.count
    if unreadable:
        problems.append(f"{table}: line {unreadable[0]} is not a song record")
    if outside and held == rows:
        problems.append(f"{table}: line {outside} names fingerprint rows that are not stored")
    if not problems and (len(lines) != songs or next_row != rows or not prefix):
        counted = f"the manifest counts {songs} and {rows}"
        problems.append(f"{table}: holds {len(lines)} songs and {next_row} rows, {counted}")

    meta = manifest.get("index")
    index_damaged = False
    if meta:
        for name in meta["files"]:
            if not (root / name).exists():
                problems.append(f"{root / name}: missing (the manifest's index)")
                index_damaged = True
        if int(meta["rows"]) > rows:
            problems.append(f"{root / meta['files'][0]}: indexes {meta['rows']} rows, the manifest stores {rows}")
            index_damaged = True
    model = root / manifest["model_file"]
    if not model.exists():
        problems.append(f"{model}: missing (the database's copy of its model)")
    return Survey(intact, line_ends, prefix, held, codec, lost, unreadable, index_damaged, not model.exists(), problems)


def _row_codec(root: Path, manifest: dict[str, Any]) -> RowCodec | None:
    """How the manifest's rows are kept; None when the codebook it names cannot be read."""
    dim, name = int(manifest["dim"]), manifest.get("codebook")
    if name is None:
        return Float16Rows(dim)
    width = code_width(str(manifest["rescore"]))
    try:
        with np.load(root / name, allow_pickle=False) as codebook:
            rotation, centroids = codebook["rotation"], codebook["centroids"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # missing, cut short, not ours
        return None
    shapes = {rotation.shape: (dim, dim), centroids.shape: (width, CENTROIDS, dim // width)}
    if rotation.dtype != np.float32 or centroids.dtype != np.float32 or any(a != b for a, b in shapes.items()):
        return None
    return OPQCodes(rotation, centroids)


def damage_message(root: Path, manifest: dict[str, Any], found: Survey) -> str:
    """One line: the first problem, how many more, and the command that repairs them."""
    more = len(found.problems) - 1
    also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    fix = f"fpkit index --db {root} --repair"
    if found.model_missing:
        fix += f" --model CHECKPOINT (the model it was built with, id {manifest['model_id']})"
    return f"{found.problems[0]}{also}; run {fix}"


def _parse_record(line: bytes) -> FileRecord | None:
    """A files-table line as a record, or None when it is not one (garbled, cut short, wrong fields)."""
    try:
        data = json.loads(line)
        record = FileRecord(**data)
    except (ValueError, TypeError):
        return None
    whole = all(isinstance(v, int) and v >= 0 for v in (record.first_row, record.count, record.size, record.mtime_ns))
    if not (whole and isinstance(record.path, str) and isinstance(record.sha, str) and record.count > 0):
        return None
    if not isinstance(record.duration_s, (int, float)):
        return None
    return record


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


def _atomic_copy(source: Path, target: Path) -> None:
    with atomic_write(target) as tmp:
        shutil.copyfile(source, tmp)


def _acquire(root: Path) -> IO[bytes]:
    lock = open(root / LOCK_FILE, "a+b")  # noqa: SIM115 - held until `close`
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StoreError(f"{root}: another process is writing this database") from None
    return lock


def _new_generation() -> str:
    return uuid.uuid4().hex[:8]
