import numpy as np
import pytest

from ihmr.errors import ShapeError
from ihmr.metrics.balanced import BinnedMean, bins_of_shot, shot_of_bins


def test_balanced_hand_computation():
    # bin 0: errors 1, 3 (mean 2); bin 2: error 10; bin 1 empty.
    acc = BinnedMean(3)
    acc.update(np.array([1.0, 10.0, 3.0]), np.array([0, 2, 0]))
    assert acc.balanced()[0] == pytest.approx((2 + 10) / 2)
    assert acc.overall()[0] == pytest.approx(14 / 3)
    assert np.isnan(acc.per_bin()[1, 0])
    assert acc.balanced([1]) is None and acc.overall([1]) is None
    assert acc.balanced([0, 1])[0] == pytest.approx(2.0)


def test_streaming_equals_one_shot(rng):
    vals = rng.random((500, 3))
    bins = rng.integers(0, 17, 500)
    one = BinnedMean(17, 3)
    one.update(vals, bins)
    many = BinnedMean(17, 3)
    for chunk in np.array_split(np.arange(500), 7):
        many.update(vals[chunk], bins[chunk])
    np.testing.assert_allclose(one.balanced(), many.balanced())
    # independent: per-bin loop
    means = [vals[bins == b].mean(0) for b in range(17) if (bins == b).any()]
    np.testing.assert_allclose(one.balanced(), np.mean(means, axis=0))
    np.testing.assert_allclose(one.overall(), vals.mean(0))


def test_merge_and_errors():
    a, b = BinnedMean(2), BinnedMean(2)
    a.update([1.0], [0])
    b.update([3.0], [1])
    assert a.merge(b).balanced()[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        a.update([1.0], [2])
    with pytest.raises(ShapeError):
        a.update(np.ones((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="non-finite"):
        a.update([np.nan], [0])


def test_shots():
    shots = shot_of_bins([150, 100, 20, 19, 0])
    assert list(shots) == ["many", "medium", "medium", "few", "few"]
    assert list(bins_of_shot(shots, "few")) == [3, 4]
