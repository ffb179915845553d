"""The FAISS index over a store's rows: choosing, training, adding, merging shards on disk.

Ids are store rows. Below `index.exact_below` vectors the index is exact (`Flat`, inner
product on unit vectors = cosine). Beyond, "auto" means IVF with about sqrt(n) lists and a
4-bit fast-scan product quantizer (`IVF{n},PQ{m}x4fs`): it trains in seconds where 8-bit PQ
takes minutes, and searches several times faster (docs/database.md has the figures).

With `index.on_disk` the inverted lists live in a memory-mapped `.ivfdata` file, built the
way faiss.contrib.ondisk does it: train an empty index, fill one shard index per block of
rows with explicit ids, then `merge_ondisk`; memory is bounded by one shard. Fast-scan lists
cannot be memory-mapped, so the on-disk variant uses an 8-bit PQ with the same bytes per
vector (`PQ{m/2}np`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

from fpkit.atomic import atomic_write
from fpkit.config import IndexConfig
from fpkit.db.rescore import check_rescore
from fpkit.db.store import Store, StoreDamaged
from fpkit.errors import FpkitError
from fpkit.progress import SILENT, Progress

log = logging.getLogger(__name__)

ADD_BLOCK = 65536  # rows converted to float32 and added at a time
SHARD_ROWS = 1 << 20  # rows per shard index held in memory while building on-disk lists
TRAIN_POINTS_PER_LIST = 64  # k-means sample per IVF list (faiss warns below 39)
MIN_POINTS_PER_LIST = 39
AUTO_MIN_ROWS = 10000  # "auto" stays exact below this: 8-bit PQ codebooks want 39 * 256 training points


class IndexConfigError(FpkitError):
    """Index settings that cannot index these fingerprints; the message names the setting."""


@dataclass(frozen=True)
class IndexPlan:
    factory: str
    on_disk: bool


def nlist_for(n: int) -> int:
    """IVF lists for `n` vectors: the power of two nearest sqrt(n), with enough points to train each."""
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n))))
    while nlist > 1 and n < MIN_POINTS_PER_LIST * nlist:
        nlist //= 2
    return nlist


def plan_index(n: int, dim: int, config: IndexConfig) -> IndexPlan:
    """The index a database of `n` vectors of `dim` should have under `config`."""
    if n < config.exact_below:
        return IndexPlan("Flat", on_disk=False)
    if config.factory != "auto":
        return IndexPlan(config.factory, config.on_disk)
    if n < AUTO_MIN_ROWS:
        return IndexPlan("Flat", on_disk=False)
    if dim % config.pq_m:
        raise IndexConfigError(f"index.pq_m={config.pq_m} must divide the fingerprint dimension {dim}")
    nlist = nlist_for(n)
    if config.on_disk:
        return IndexPlan(f"IVF{nlist},PQ{config.pq_m // 2}np", on_disk=True)
    return IndexPlan(f"IVF{nlist},PQ{config.pq_m}x4fs", on_disk=False)


def update_index(store: Store, config: IndexConfig, progress: Progress = SILENT) -> dict[str, Any]:
    """Bring the store's index up to its rows; returns the manifest entry for `store.set_index`.

    New rows are added to the current index when the plan for the new size is unchanged;
    otherwise (first index, a different factory, more IVF lists) it is rebuilt from the store.
    The new index is written under a new name: the old one stays valid until the manifest moves.
    `progress` counts the rows added, in one phase ("indexing") started only when there are some.
    """
    meta = store.index_meta
    plan = plan_index(store.rows, store.dim, config)
    generation = (meta["generation"] + 1) if meta else 0
    stem = store.root / f"index-{generation:06d}"
    same_plan = meta is not None and meta["factory"] == plan.factory and meta["on_disk"] == plan.on_disk
    if same_plan and meta is not None and meta["rows"] == store.rows:
        return meta
    # On-disk lists are rebuilt whole: merging is a linear pass over the store anyway.
    extend = same_plan and not plan.on_disk
    if extend:
        assert meta is not None
        index, start = read_index(store.root, meta), int(meta["rows"])
    progress.start("indexing", store.rows - start if extend else store.rows)
    try:
        if not extend:
            log.info("building a %s index over %d rows", plan.factory, store.rows)
            index, start = _trained(plan.factory, store), 0
        if plan.on_disk:
            files = _build_on_disk(index, store, stem, progress)
        else:
            _add_rows(index, store, start, store.rows, progress)
            files = [_write(index, stem.with_suffix(".faiss"))]
    except RuntimeError as err:  # FAISS refusing a factory for this many rows, e.g. more lists than points
        raise IndexConfigError(f"index {plan.factory!r} over {store.rows} rows: {_faiss_reason(err)}") from None
    return {
        "factory": plan.factory,
        "on_disk": plan.on_disk,
        "rows": store.rows,
        "generation": generation,
        "files": files,
    }


def read_index(root: Path, meta: dict[str, Any]) -> faiss.Index:
    """Load the index a manifest entry names; on-disk inverted lists are memory-mapped.

    Raises `StoreDamaged` naming the file when it cannot be read or holds another number of rows.
    """
    path = root / meta["files"][0]
    repair = f"run fpkit index --db {root} --repair"
    try:
        if meta.get("on_disk"):
            index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
        else:
            index = faiss.read_index(str(path))
    except RuntimeError as err:
        raise StoreDamaged(f"{path}: not a readable FAISS index ({_faiss_reason(err)}); {repair}") from None
    if index.ntotal != int(meta["rows"]):
        raise StoreDamaged(f"{path}: holds {index.ntotal} rows, the manifest says {meta['rows']}; {repair}")
    return index


def check_index_config(config: IndexConfig, dim: int) -> None:
    """Raise `IndexConfigError` naming the setting when `config` cannot index fingerprints of `dim`.

    Cheap (it builds an empty index), so commands call it before any work. "auto" plans its
    IVF-PQ when a database grows that large (`plan_index`).
    """
    problem = check_rescore(config.rescore, dim)
    if problem is not None:
        raise IndexConfigError(f"index.rescore={config.rescore}: {problem}")
    if config.factory == "auto":
        return
    setting = f"index.factory={config.factory!r}"
    try:
        index = faiss.index_factory(dim, config.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        reason = _faiss_reason(err)
        raise IndexConfigError(f"{setting}: not a FAISS index for {dim}-d inner products ({reason})") from None
    try:
        faiss.extract_index_ivf(index)
        ivf = True
    except RuntimeError:
        ivf = False
    if config.on_disk and not ivf:
        raise IndexConfigError(f"{setting}: index.on_disk needs an IVF index")
    if not (ivf or isinstance(index, (faiss.IndexFlat, faiss.IndexIDMap))):
        raise IndexConfigError(f"{setting}: cannot store row ids (use an IVF index, Flat, or IDMap,{config.factory})")


def _faiss_reason(err: RuntimeError) -> str:
    """The readable end of a FAISS error: "could not parse index string X" rather than the C++ location."""
    text = " ".join(str(err).split())
    reason = re.split(r"\.(?:cpp|h):\d+: ", text)[-1]
    return re.sub(r"^Error: '.*?' failed: ", "", reason)


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Lists visited per query vector; a no-op on exact indexes."""
    with contextlib.suppress(RuntimeError):  # raised for an index that is not IVF
        faiss.extract_index_ivf(index).nprobe = nprobe


def _trained(factory: str, store: Store) -> faiss.Index:
    index = faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        try:
            nlist = faiss.extract_index_ivf(index).nlist
        except RuntimeError:
            nlist = 256  # a PQ without IVF: its codebooks want a few thousand points
        take = min(store.rows, max(TRAIN_POINTS_PER_LIST * nlist, 10000))
        rows = np.sort(np.random.default_rng(0).choice(store.rows, size=take, replace=False))
        index.train(store.gather_rows(rows))
    return index


def _add_rows(index: faiss.Index, store: Store, start: int, stop: int, progress: Progress) -> None:
    for a in range(start, stop, ADD_BLOCK):
        b = min(stop, a + ADD_BLOCK)
        block = np.asarray(store.read_rows(a, b), dtype=np.float32)
        if isinstance(index, faiss.IndexFlat):
            index.add(block)  # flat ids are positions, and rows are added in order
        else:
            index.add_with_ids(block, np.arange(a, b, dtype=np.int64))
        progress.advance(b - a)


def _build_on_disk(trained: faiss.Index, store: Store, stem: Path, progress: Progress) -> list[str]:
    """Fill one shard index per block of rows, then merge their lists into one `.ivfdata` file."""
    shards = []
    for n, a in enumerate(range(0, store.rows, SHARD_ROWS)):
        shard = faiss.clone_index(trained)
        _add_rows(shard, store, a, min(store.rows, a + SHARD_ROWS), progress)
        path = stem.parent / f"{stem.name}.shard{n}.tmp"
        faiss.write_index(shard, str(path))
        shards.append(path)
    data_path = stem.with_suffix(".ivfdata")
    with atomic_write(data_path) as tmp:
        merge_ondisk(trained, [str(p) for p in shards], str(tmp))
    # The index file names its lists' file; read_index's IO_FLAG_ONDISK_SAME_DIR finds it beside the index.
    ivf: Any = faiss.extract_index_ivf(trained)
    lists: Any = faiss.downcast_InvertedLists(ivf.invlists)  # an OnDiskInvertedLists
    lists.filename = str(data_path)
    for path in shards:
        path.unlink(missing_ok=True)
    return [_write(trained, stem.with_suffix(".faiss")), data_path.name]


def _write(index: faiss.Index, path: Path) -> str:
    with atomic_write(path) as tmp:
        faiss.write_index(index, str(tmp))
    return path.name
