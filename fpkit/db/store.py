"""The on-disk fingerprint store: vectors, a table of files, the model that made them.

A store is a folder:

    manifest.json          what is committed: row and song counts, file names, model id, index
    model.pt               a copy of the checkpoint, so the folder is self-contained
    vectors-<gen>.f16      (rows, d) float16, row-major, append-only
    files-<gen>.jsonl      one `FileRecord` per song, append-only
    index-<n>.faiss        the FAISS index over the rows (see `fpkit.db.index`), when there is one

Crash safety comes from the manifest alone: it is replaced atomically (`os.replace`) after
everything it points at is written and synced, and readers look only at the rows and bytes it
counts. An interrupted writer leaves bytes past those counts, which the next writer cuts off,
and files that no manifest names, which the next commit deletes. Starting over (`start_over`)
writes a new generation of files, so the old ones stay valid until the new manifest lands.
One writer at a time holds an advisory lock on `.lock`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from fpkit.config import AudioConfig

log = logging.getLogger(__name__)

STORE_FORMAT = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.pt"
LOCK_FILE = ".lock"
VECTOR_DTYPE = np.dtype(np.float16)  # see docs/database.md: re-scores like float32 at half the bytes
_GENERATED_PREFIXES = ("vectors-", "files-", "index-")


class StoreError(ValueError):
    """A store folder that cannot be used as asked; the message names the folder."""


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


class Store:
    """Fingerprints and files of one folder; open read-only, or writable under the lock."""

    def __init__(self, root: Path, manifest: dict[str, Any], lock: IO[bytes] | None) -> None:
        self.root = root
        self.manifest = manifest
        self._lock = lock
        self.files: list[FileRecord] = self._read_files()
        self._by_sha = {f.sha: f for f in self.files}
        self._by_path = {f.path: f for f in self.files}
        self._vectors: np.ndarray | None = None
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
            "dtype": VECTOR_DTYPE.name,
            "vectors": f"vectors-{gen}.f16",
            "files": f"files-{gen}.jsonl",
            "rows": 0,
            "songs": 0,
            "files_bytes": 0,
            "index": None,
        }
        store = cls(root, manifest, lock)
        store.commit()
        return store

    @classmethod
    def open(cls, root: str | Path, writable: bool = False) -> Store:
        """Open an existing store; `writable` takes the lock and cuts off an interrupted run's tail."""
        root = Path(root)
        manifest = read_manifest(root)
        lock = _acquire(root) if writable else None
        if lock is not None:
            manifest = read_manifest(root)  # another writer may have committed while we waited
        store = cls(root, manifest, lock)
        if writable:
            store._truncate_to_manifest()
        return store

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
    def vectors(self) -> np.ndarray:
        """All rows (rows, d) float16, memory-mapped; includes rows appended but not yet committed."""
        if self._vectors is None:
            self._vectors = self.read_rows(0, self.rows)
        return self._vectors

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a read-only memory map (stop - start, d) float16."""
        if stop <= start:
            return np.zeros((0, self.dim), dtype=VECTOR_DTYPE)
        if self._out is not None:
            self._out.flush()
        row_bytes = self.dim * VECTOR_DTYPE.itemsize
        return np.memmap(
            self.root / self.manifest["vectors"],
            dtype=VECTOR_DTYPE,
            mode="r",
            offset=start * row_bytes,
            shape=(stop - start, self.dim),
        )

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
    def append(
        self, path: str, duration_s: float, sha: str, size: int, mtime_ns: int, prints: np.ndarray
    ) -> FileRecord:
        """Write one song's fingerprints (n, d); visible to readers after `commit`."""
        self._require_writable()
        if prints.ndim != 2 or prints.shape[1] != self.dim:
            raise StoreError(f"{self.root}: expected fingerprints of shape (n, {self.dim}), got {prints.shape}")
        if self._out is None:
            self._out = open(self.root / self.manifest["vectors"], "ab")  # noqa: SIM115 - held across appends
            self._table = open(self.root / self.manifest["files"], "a", encoding="utf-8")  # noqa: SIM115
        assert self._table is not None
        record = FileRecord(path, duration_s, self.rows, int(prints.shape[0]), sha, size, mtime_ns)
        self._out.write(np.ascontiguousarray(prints, dtype=VECTOR_DTYPE).tobytes())
        line = json.dumps(asdict(record)) + "\n"
        self._table.write(line)
        self.files.append(record)
        self._by_sha[sha] = record
        self._by_path[path] = record
        self.manifest["rows"] = self.rows + record.count
        self.manifest["songs"] = len(self.files)
        self.manifest["files_bytes"] = int(self.manifest["files_bytes"]) + len(line.encode("utf-8"))
        self._vectors = None
        return record

    def set_index(self, meta: dict[str, Any] | None) -> None:
        """Point the manifest at an index (its files already written); takes effect on `commit`."""
        self._require_writable()
        self.manifest["index"] = meta

    def start_over(self) -> None:
        """Forget every song and the index; the old files stay valid until `commit`."""
        self._require_writable()
        self.close_writers()
        gen = _new_generation()
        self.manifest.update(
            vectors=f"vectors-{gen}.f16", files=f"files-{gen}.jsonl", rows=0, songs=0, files_bytes=0, index=None
        )
        self.files, self._by_sha, self._by_path, self._vectors = [], {}, {}, None

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
        _atomic_write_json(self.root / MANIFEST, self.manifest)
        self._collect_garbage()

    def close_writers(self) -> None:
        for handle in (self._out, self._table):
            if handle is not None:
                handle.close()
        self._out = self._table = None

    def _require_writable(self) -> None:
        if self._lock is None:
            raise StoreError(f"{self.root}: opened read-only")

    def _read_files(self) -> list[FileRecord]:
        path = self.root / self.manifest["files"]
        if not path.exists():
            return []
        with open(path, "rb") as f:
            data = f.read(int(self.manifest["files_bytes"]))
        records = [FileRecord(**json.loads(line)) for line in data.decode("utf-8").splitlines()]
        if len(records) != int(self.manifest["songs"]):
            raise StoreError(
                f"{self.root}: files table holds {len(records)} songs, manifest says {self.manifest['songs']}"
            )
        return records

    def _truncate_to_manifest(self) -> None:
        """Cut off what an interrupted writer appended after the last commit."""
        for name, size in (
            ("vectors", self.rows * self.dim * VECTOR_DTYPE.itemsize),
            ("files", int(self.manifest["files_bytes"])),
        ):
            path = self.root / self.manifest[name]
            if path.exists() and path.stat().st_size > size:
                log.info("%s: discarding %d bytes of an interrupted run", path, path.stat().st_size - size)
                with open(path, "r+b") as f:
                    f.truncate(size)

    def _collect_garbage(self) -> None:
        keep = {self.manifest["vectors"], self.manifest["files"]}
        keep.update((self.manifest.get("index") or {}).get("files", []))
        for path in self.root.iterdir():
            stale = path.name.startswith(_GENERATED_PREFIXES) and path.name not in keep
            if stale or path.name.endswith(".tmp"):
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
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: unknown database format")
    return manifest


def atomic_path(path: Path) -> Path:
    """The temporary name a file is written under before `os.replace` moves it into place."""
    return path.with_name(path.name + ".tmp")


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = atomic_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_copy(source: Path, target: Path) -> None:
    tmp = atomic_path(target)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


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
