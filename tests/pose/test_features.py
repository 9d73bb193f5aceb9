"""Feature store: round trip, fingerprints, atomic shards and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ihmr.errors import DataError
from ihmr.pose.features import FeatureStore, FeatureStoreWriter, write_feature_store
from ihmr.pose.spin_data import read_spin_npz

from .helpers import spin_arrays

META = dict(
    dataset="demo", labels_fingerprint="abc", source_checkpoint="ck.pt", source_fingerprint="f00"
)


def test_round_trip_float16(tmp_path, rng):
    x = rng.normal(size=(23, 8)).astype(np.float32)
    store = write_feature_store(tmp_path / "s", x, shard_size=5, **META)
    assert (store.count, store.feature_dim, store.views) == (23, 8, 0)
    assert len(store.meta["shards"]) == 5
    np.testing.assert_array_equal(store.array(), x.astype(np.float16))
    got = np.concatenate([b for _, b in store.iter_batches(3)])
    np.testing.assert_array_equal(got, x.astype(np.float16))
    starts = [s for s, _ in store.iter_batches(3)]
    assert starts[:3] == [0, 3, 5]
    assert store.tensor().dtype.is_floating_point and store.tensor().shape == (23, 8)


def test_resume_writes_only_missing_shards(tmp_path, rng):
    x = rng.normal(size=(10, 4))
    w = FeatureStoreWriter(tmp_path / "s", count=10, feature_dim=4, shard_size=4, **META)
    assert [p[0] for p in w.pending()] == [0, 1, 2]
    w.write_shard(1, x[4:8])
    (tmp_path / "s" / ".shard_00002.npy.abc.npy.tmp").write_bytes(b"half")  # a killed write
    with pytest.raises(DataError, match="incomplete"):
        FeatureStore(tmp_path / "s")
    w2 = FeatureStoreWriter(tmp_path / "s", count=10, feature_dim=4, shard_size=4, **META)
    assert [p[:3] for p in w2.pending()] == [(0, 0, 4), (2, 8, 10)]
    mtime = (tmp_path / "s" / "shard_00001.npy").stat().st_mtime_ns
    for i, a, b in w2.pending():
        w2.write_shard(i, x[a:b])
    store = w2.finalize()
    assert (tmp_path / "s" / "shard_00001.npy").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(store.array(), x.astype(np.float16))
    with pytest.raises(DataError, match="different"):
        FeatureStoreWriter(tmp_path / "s", count=10, feature_dim=5, shard_size=4, **META)


def test_write_shard_checks(tmp_path):
    w = FeatureStoreWriter(tmp_path / "s", count=3, feature_dim=4, shard_size=4, **META)
    with pytest.raises(DataError, match=r"\(3, 1, 4\)"):
        w.write_shard(0, np.zeros((2, 4)))
    with pytest.raises(DataError, match="non-finite"):
        w.write_shard(0, np.full((3, 4), 1e6))
    assert w.pending() and not (tmp_path / "s" / "shard_00000.npy").exists()


def test_fingerprint_checks(tmp_path, rng):
    np.savez(tmp_path / "lsp.npz", **spin_arrays(6, rng, "lsp"))
    labels = read_spin_npz(tmp_path / "lsp.npz")
    meta = dict(META, labels_fingerprint=labels.fingerprint())
    store = write_feature_store(tmp_path / "s", np.zeros((6, 4)), **meta)
    store.check_labels(labels)
    store.check_source("f00")
    with pytest.raises(DataError, match="holds 6 samples but"):
        store.check_labels(labels.subset(slice(0, 5)))
    with pytest.raises(DataError, match="different sample list"):
        store.check_labels(labels.subset(np.arange(6)[::-1]))
    with pytest.raises(DataError, match="fingerprint f00"):
        store.check_source("beef")
    # a tampered shard is caught when read
    np.save(tmp_path / "s" / "shard_00000.npy", np.zeros((6, 1, 3), np.float16))
    with pytest.raises(DataError, match="expected \\(6, 1, 4\\) float16"):
        FeatureStore(tmp_path / "s").array()
    idx = json.loads((tmp_path / "s" / "index.json").read_text())
    assert idx["source"]["fingerprint"] == "f00" and idx["complete"] is True
