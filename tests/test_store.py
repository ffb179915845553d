from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

import fpkit.db.store
from fpkit.config import AudioConfig, IndexConfig
from fpkit.db.index import nlist_for, plan_index, read_index, update_index
from fpkit.db.store import MANIFEST, Store, StoreError

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def new_store(tmp_path: Path) -> Store:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    return Store.create(tmp_path / "db", model, "abc123", AudioConfig(), DIM)


def add(store: Store, rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    prints = unit(rng, n)
    store.append(f"/music/{name}", n / 2, sha=name, size=n, mtime_ns=0, prints=prints)
    return prints


def test_songs_and_rows_survive_reopening(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with new_store(tmp_path) as store:
        a, b = add(store, rng, "a", 5), add(store, rng, "b", 3)
        store.commit()
    store = Store.open(tmp_path / "db")
    assert store.rows == 8 and [f.path for f in store.files] == ["/music/a", "/music/b"]
    assert store.files[1].first_row == 5 and store.files[1].count == 3
    np.testing.assert_allclose(store.read_rows(0, 8), np.concatenate([a, b]), atol=1e-3)  # float16
    assert store.find_content("b") == store.files[1]
    assert store.find_unchanged("/music/a", 5, 0) == store.files[0]
    assert store.find_unchanged("/music/a", 6, 0) is None
    assert (tmp_path / "db" / "model.pt").read_bytes() == b"weights"
    first, count = store.song_bounds()
    assert first.tolist() == [0, 5] and count.tolist() == [5, 3]


def test_uncommitted_songs_are_invisible_and_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = new_store(tmp_path)
    add(store, rng, "a", 4)
    store.commit()
    add(store, rng, "b", 6)  # a crash here: appended, never committed
    store.close_writers()
    store.close()
    reader = Store.open(tmp_path / "db")
    assert reader.rows == 4 and len(reader.files) == 1
    with Store.open(tmp_path / "db", writable=True) as writer:
        vectors = tmp_path / "db" / writer.manifest["vectors"]
        assert vectors.stat().st_size == 4 * DIM * 2
        add(writer, rng, "b", 6)
        writer.commit()
    assert Store.open(tmp_path / "db").rows == 10


def test_start_over_keeps_the_old_songs_until_commit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = new_store(tmp_path)
    add(store, rng, "a", 4)
    store.commit()
    store.start_over(keep_codebook=False)
    add(store, rng, "b", 2)
    assert Store.open(tmp_path / "db").files[0].path == "/music/a"
    store.commit()
    reopened = Store.open(tmp_path / "db")
    assert [f.path for f in reopened.files] == ["/music/b"]
    assert len(list((tmp_path / "db").glob("vectors-*"))) == 1  # the old generation is deleted
    store.close()


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with pytest.raises(StoreError, match="another process is writing"):
        Store.open(tmp_path / "db", writable=True)
    store.close()
    Store.open(tmp_path / "db", writable=True).close()


def test_missing_or_foreign_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database folder"):
        Store.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not an fpkit database"):
        Store.open(tmp_path / "empty")
    (tmp_path / "empty" / MANIFEST).write_text("{")
    with pytest.raises(StoreError, match="unreadable manifest"):
        Store.open(tmp_path / "empty")


def test_index_plan_grows_from_exact_to_ivf_fast_scan() -> None:
    config = IndexConfig(exact_below=1000)
    assert plan_index(999, 128, config).factory == "Flat"
    assert plan_index(5000, 128, config).factory == "Flat"  # too few to train PQ codebooks
    assert plan_index(1_000_000, 128, config).factory == "IVF1024,PQ64x4fs"
    assert plan_index(1_000_000, 128, IndexConfig(on_disk=True)).factory == "IVF1024,PQ32np"
    assert plan_index(50_000, 128, IndexConfig(factory="IVF64,Flat")).factory == "IVF64,Flat"
    assert nlist_for(1000) == 16  # sqrt says 32, but each list needs 39 training points
    with pytest.raises(ValueError, match="pq_m=48 must divide"):
        plan_index(10**6, 128, _pq(48))


def _pq(m: int) -> IndexConfig:
    config = IndexConfig()
    config.pq_m = m  # bypasses validate(), as a hand-edited checkpoint config could
    return config


@pytest.mark.parametrize("on_disk", [False, True])
def test_index_is_extended_then_rebuilt_as_it_grows(tmp_path: Path, on_disk: bool) -> None:
    rng = np.random.default_rng(0)
    store = new_store(tmp_path)
    config = IndexConfig(exact_below=3000, pq_m=8, on_disk=on_disk)
    first = add(store, rng, "a", 1000)
    store.set_index(update_index(store, config))
    store.commit()
    assert store.index_meta is not None and store.index_meta["factory"] == "Flat"
    add(store, rng, "b", 500)
    store.set_index(update_index(store, config))  # still exact: extended in place
    store.commit()
    add(store, rng, "c", 11000)
    meta = update_index(store, config)  # now IVF: trained and rebuilt
    store.set_index(meta)
    store.commit()
    assert meta["factory"] == ("IVF128,PQ4np" if on_disk else "IVF128,PQ8x4fs") and meta["rows"] == 12500
    assert sorted(p.name for p in (tmp_path / "db").glob("index-*")) == sorted(meta["files"])
    index = read_index(store.root, meta)
    faiss.extract_index_ivf(index).nprobe = 64
    _, ids = index.search(first[:50], 1)
    assert np.mean(ids[:, 0] == np.arange(50)) >= 0.8  # 4-bit PQ of 16-d random vectors is coarse
    store.close()


def test_the_training_sample_is_read_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    store = new_store(tmp_path)
    prints = np.concatenate([add(store, rng, "a", 700), add(store, rng, "b", 300)])
    monkeypatch.setattr(fpkit.db.store, "ENCODE_BLOCK", 64)  # many blocks, some without a sampled row
    rows = np.sort(rng.choice(1000, size=90, replace=False))
    sample = store.gather_rows(rows)
    assert sample.dtype == np.float32
    np.testing.assert_array_equal(sample, prints[rows].astype(np.float16).astype(np.float32))
    store.close()
