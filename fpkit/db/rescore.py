"""The stored fingerprints that re-scoring reads: float16 rows, or optimized product-quantizer codes.

Sequence search scores each candidate alignment against the stored fingerprints at that
alignment (`fpkit.db.search`), so a database keeps every fingerprint beside its FAISS index.
`index.rescore` says how (docs/database.md, "Stored fingerprints and size"):

    float16  the fingerprint as it is, (d,) float16: 256 bytes at d = 128
    opq32    32 bytes: the fingerprint rotated, cut into 32 sub-vectors, and each stored as the
             one-byte number of its nearest centroid among 256 (an optimized product quantizer,
             Ge et al. 2013, as faiss trains it); the database keeps the rotation and centroids,
             and re-scoring reads the centroids rotated back

A database indexed with an `opq` setting keeps float16 rows until it holds `TRAIN_ROWS` of them,
then trains its codebook on them, encodes them and keeps codes from then on. Encoding loses the
float16 rows, so it goes one way: a database that holds codes keeps them whatever later runs
ask, and its index is rebuilt from the decoded codes when it grows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, get_args

import faiss
import numpy as np

from fpkit.config import RescoreMode

if TYPE_CHECKING:  # the store imports this module; it is only passed in here
    from fpkit.db.store import Store

log = logging.getLogger(__name__)

RESCORE_MODES: tuple[str, ...] = get_args(RescoreMode)
FLOAT16 = "float16"
FLOAT16_DTYPE = np.dtype(np.float16)
OPQ_PREFIX = "opq"
CENTROIDS = 256  # per sub-vector: one byte per code
# Rows a codebook is trained on (9.1 h of audio; a sample when there are more), and so the rows a
# database holds before it encodes them. On real fingerprints (docs/database.md) a PQ32 codebook
# trained on a database's first 10,000 rows encoded other songs with a 23 % larger squared error.
TRAIN_ROWS = 65536
ENCODE_BLOCK = 65536  # rows read at a time over a whole store: encoding it as codes, gathering a sample
# A fingerprint is a unit vector and a blank segment's the zero vector (fpkit.fingerprint); decoded,
# their codes come out near length 1 (0.90 at least on the evaluation database) and near 0 (0.005 at most).
BLANK_LENGTH = 0.5


class RowCodec(Protocol):
    """How a store keeps its fingerprint rows on disk."""

    mode: str  # the `index.rescore` value it implements
    dtype: np.dtype  # of the stored values
    width: int  # stored values per row

    def encode(self, prints: np.ndarray) -> np.ndarray:
        """Fingerprints (n, d) -> stored rows (n, width) of `dtype`."""
        ...

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored rows (n, width) -> fingerprints (n, d), float16 or float32."""
        ...


class Float16Rows:
    """Fingerprints kept as they are in float16, which re-scores like float32 (docs/database.md)."""

    mode = FLOAT16
    dtype = FLOAT16_DTYPE

    def __init__(self, dim: int) -> None:
        self.width = dim

    def encode(self, prints: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(prints, dtype=self.dtype)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        return stored


class OPQCodes:
    """One byte per sub-vector of the rotated fingerprint: the number of its nearest centroid."""

    dtype = np.dtype(np.uint8)

    def __init__(self, rotation: np.ndarray, centroids: np.ndarray) -> None:
        """`rotation` (d, d) orthonormal, applied as x @ rotation.T; `centroids` (m, 256, d / m) float32."""
        m, count, sub_dim = centroids.shape
        self.rotation = np.ascontiguousarray(rotation, dtype=np.float32)
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.width = m
        self.mode = f"{OPQ_PREFIX}{m}"
        self._pq: Any = faiss.ProductQuantizer(m * sub_dim, m, int(np.log2(count)))  # its wrappers are untyped
        faiss.copy_array_to_vector(self.centroids.ravel(), self._pq.centroids)

    def encode(self, prints: np.ndarray) -> np.ndarray:
        codes: np.ndarray = self._pq.compute_codes(np.asarray(prints, dtype=np.float32) @ self.rotation.T)
        return codes

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Codes (n, m) -> unit fingerprints (n, d) float32, or zero for a blank segment's.

        A sum of centroids falls short of the fingerprint's unit length (by 0.8 % on average on the
        evaluation database), which would lower every match's similarity by as much: decoded rows
        are made unit again.
        """
        prints = self._pq.decode(np.ascontiguousarray(stored)) @ self.rotation  # (n, d)
        length = np.linalg.norm(prints, axis=1, keepdims=True)
        unit: np.ndarray = np.where(length > BLANK_LENGTH, prints / np.maximum(length, BLANK_LENGTH), 0.0)
        return unit.astype(np.float32, copy=False)


def code_width(mode: str) -> int:
    """Codes per row of an `opq` mode ("opq32" -> 32); 0 for float16."""
    return int(mode.removeprefix(OPQ_PREFIX)) if mode.startswith(OPQ_PREFIX) else 0


def check_rescore(mode: str, dim: int) -> str | None:
    """Why `mode` cannot keep fingerprints of `dim` dimensions, or None when it can."""
    width = code_width(mode)
    if width and dim % width:
        return f"{mode} cuts fingerprints into {width} sub-vectors, but this model's {dim} dimensions do not divide"
    return None


def train_codes(sample: np.ndarray, width: int) -> OPQCodes:
    """An optimized product quantizer of `width` one-byte codes trained on `sample` (n, d).

    The rotation spreads the fingerprint's variance evenly over the sub-vectors: on real
    fingerprints it made decoded rows four times closer than the same codes without it.
    """
    dim = sample.shape[1]
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    opq: Any = faiss.OPQMatrix(dim, width)
    opq.train(sample)
    rotation = faiss.vector_to_array(opq.A).reshape(dim, dim)
    pq: Any = faiss.ProductQuantizer(dim, width, int(np.log2(CENTROIDS)))
    pq.train(sample @ rotation.T)
    return OPQCodes(rotation, faiss.vector_to_array(pq.centroids).reshape(width, CENTROIDS, dim // width))


class StoredRows:
    """A store's rows read like a (rows, d) array: `rows[i]` decodes the rows `i` selects.

    Float16 rows come back as float16, codes as float32 fingerprints. Nothing is read until indexed,
    so a search decodes only the rows its candidate alignments cover.
    """

    def __init__(self, stored: np.ndarray, codec: RowCodec, dim: int) -> None:
        self.stored = stored  # (rows, codec.width), usually memory-mapped
        self.codec = codec
        self.shape = (len(stored), dim)

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, rows: Any) -> np.ndarray:
        return self.codec.decode(self.stored[rows])


Fingerprints = np.ndarray | StoredRows  # (rows, d) stored fingerprints, as arrays or a store's rows


def keep_rows_as(store: Store, mode: str) -> None:
    """Apply a run's `index.rescore` to `store` (uncommitted): its mode, and its codes once it can train them.

    A float16 store takes `mode`; a store that holds codes, or is to, keeps its own. Once it holds
    `TRAIN_ROWS` rows, a codebook is trained on them (a sample when there are more) and every row
    is encoded.
    """
    if store.rescore == FLOAT16 and mode != FLOAT16:
        store.set_rescore(mode)
    width = code_width(store.rescore)
    if not width or store.kept_as != FLOAT16 or store.rows < TRAIN_ROWS:
        return
    take = min(store.rows, TRAIN_ROWS)
    rows = np.sort(np.random.default_rng(0).choice(store.rows, size=take, replace=False))
    log.info("training an %s codebook on %d of %d rows", store.rescore, take, store.rows)
    store.encode_rows(train_codes(store.gather_rows(rows), width))
