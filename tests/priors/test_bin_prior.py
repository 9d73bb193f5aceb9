"""Bin priors, LDS kernels and smoothing against scipy, reweighting against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from ihmr.errors import DataError, ShapeError
from ihmr.priors import (
    LDS,
    BinPrior,
    GMMPrior,
    edges_from_width,
    histogram_prior,
    lds_kernel,
    load_prior,
    parse_bins,
    reweighting_weights,
    smooth_counts,
)


@pytest.mark.parametrize("ks,sigma", [(5, 2.0), (9, 1.0), (3, 0.5)])
def test_gaussian_kernel_as_dir(ks, sigma):
    from scipy.ndimage import gaussian_filter1d

    delta = np.zeros(ks)
    delta[ks // 2] = 1.0
    ref = gaussian_filter1d(delta, sigma=sigma)
    k = lds_kernel("gaussian", ks, sigma)
    np.testing.assert_allclose(k, ref / ref.max(), rtol=1e-12)
    assert k[ks // 2] == 1.0 and np.allclose(k, k[::-1])


def test_triangular_and_laplace_kernels():
    from scipy.signal.windows import triang

    np.testing.assert_allclose(lds_kernel("triangular", 7), triang(7), rtol=1e-12)
    np.testing.assert_allclose(lds_kernel("triang", 5), [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-12)
    e = np.exp
    np.testing.assert_allclose(
        lds_kernel("laplace", 5, 2.0), [e(-1), e(-0.5), 1, e(-0.5), e(-1)], rtol=1e-12
    )


def test_kernel_bad_input():
    with pytest.raises(ValueError, match="did you mean 'gaussian'"):
        lds_kernel("gausian")
    with pytest.raises(ValueError, match="positive odd integer"):
        lds_kernel("gaussian", ks=4)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        lds_kernel("laplace", 5, 0.0)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
@pytest.mark.parametrize("n,ks", [(20, 5), (7, 3), (3, 9)])
def test_smooth_counts_matches_scipy_convolve1d(rng, mode, n, ks):
    from scipy.ndimage import convolve1d

    counts = rng.integers(0, 50, n).astype(float)
    kernel = rng.uniform(0.1, 1.0, ks)  # asymmetric on purpose: checks the flip
    ref = convolve1d(counts, kernel, mode=mode)
    np.testing.assert_allclose(smooth_counts(counts, kernel, mode), ref, rtol=1e-12)


def test_smooth_counts_by_hand():
    # zero padding: [1, 0, 0] * [0.5, 1, 0.5] -> [1, 0.5, 0]; reflect repeats the edge bin
    np.testing.assert_allclose(smooth_counts([1.0, 0, 0], [0.5, 1, 0.5]), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(
        smooth_counts([1.0, 0, 0], [0.5, 1, 0.5], "reflect"), [1.5, 0.5, 0.0]
    )
    with pytest.raises(ShapeError, match="odd"):
        smooth_counts([1.0, 2.0], [0.5, 0.5])


def test_histogram_counts_density_and_clipping(rng):
    y = rng.uniform(0, 10, 500)
    edges = np.array([0.0, 1.0, 2.5, 5.0, 10.0])  # unequal widths
    p = histogram_prior(y, edges)
    np.testing.assert_array_equal(p.counts, np.histogram(y, edges)[0])
    np.testing.assert_allclose((p.density * p.widths).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p.density, np.histogram(y, edges, density=True)[0], rtol=1e-12)
    np.testing.assert_allclose(p.centers, [0.5, 1.75, 3.75, 7.5])
    with pytest.warns(UserWarning, match="2 of 4 label"):
        q = histogram_prior([-3.0, 0.2, 9.0, 12.0], edges)
    np.testing.assert_array_equal(q.counts, [2, 0, 0, 2])
    assert q.metadata["n_outside"] == 2


def test_histogram_with_lds_equals_scipy_smoothing(rng):
    from scipy.ndimage import convolve1d, gaussian_filter1d

    y = rng.exponential(2.0, 400)
    edges = parse_bins("0:10:20")
    p = histogram_prior(y[y < 10], edges, lds=True)
    delta = np.zeros(5)
    delta[2] = 1.0
    k = gaussian_filter1d(delta, 2.0)
    ref = convolve1d(np.histogram(y[y < 10], edges)[0].astype(float), k / k.max(), mode="constant")
    np.testing.assert_allclose(p.smoothed, ref, rtol=1e-12)
    lds = {"kind": "laplace", "ks": 3, "sigma": 1.0, "mode": "reflect"}
    r = histogram_prior(y[y < 10], edges, lds=lds)
    ref = convolve1d(p.counts, np.exp(-np.abs([-1.0, 0.0, 1.0])), mode="reflect")
    np.testing.assert_allclose(r.smoothed, ref, rtol=1e-12)
    assert r.metadata["lds"]["kind"] == "laplace"
    with pytest.raises(ValueError, match="did you mean 'sigma'"):
        histogram_prior(y[y < 10], edges, lds={"sigam": 1.0})


def test_reweighting_by_hand():
    y = np.array([0.5, 0.5, 0.5, 1.5, 2.5, 2.5])
    p = histogram_prior(y, [0.0, 1.0, 2.0, 3.0])  # counts 3, 1, 2
    # inverse: 1/3, 1/3, 1/3, 1, 1/2, 1/2 (sum 3, mean 1/2) -> times 2
    np.testing.assert_allclose(reweighting_weights(y, p, "inverse"), [2 / 3, 2 / 3, 2 / 3, 2, 1, 1])
    s = np.array([3**-0.5] * 3 + [1.0] + [2**-0.5] * 2)
    np.testing.assert_allclose(reweighting_weights(y, p, "sqrt_inv"), s * 6 / s.sum())
    # clip counts to >= 2 before inverting: 1/3 x3, 1/2, 1/2 x2 (sum 2.5) -> times 6/2.5
    np.testing.assert_allclose(
        reweighting_weights(y, p, clip=(2, None)), np.array([1 / 3] * 3 + [0.5] * 3) * 6 / 2.5
    )
    np.testing.assert_array_equal(reweighting_weights(y, p, "none"), np.ones(6))


def test_reweighting_with_gmm_prior_and_far_tail():
    p = GMMPrior([1.0], [[0.0]], [[[1.0]]])
    y = np.array([0.0, 1.0, 2.0])
    w = np.exp(y**2 / 2)  # 1 / N(y; 0, 1) up to a constant
    np.testing.assert_allclose(reweighting_weights(y, p), w * 3 / w.sum(), rtol=1e-12)
    far = reweighting_weights(np.array([0.0, 40.0]), p)  # density e^-800: no overflow
    np.testing.assert_allclose(far, [0.0, 2.0], atol=1e-300)


def test_reweighting_bad_input():
    p = histogram_prior([0.5, 2.5], [0.0, 1.0, 2.0, 3.0])  # middle bin empty
    with pytest.raises(DataError, match="1 label.*prior is 0.*clip"):
        reweighting_weights([1.5, 0.5], p)
    np.testing.assert_allclose(reweighting_weights([1.5, 0.5], p, clip=(1.0, None)), [1.0, 1.0])
    with pytest.raises(ValueError, match="did you mean 'sqrt_inv'"):
        reweighting_weights([0.5], p, "sqrt")
    with pytest.raises(TypeError, match="BinPrior or GMMPrior"):
        reweighting_weights([0.5], object())


def test_bad_labels_and_edges():
    with pytest.raises(DataError, match="1 of 3 NaN"):
        histogram_prior([0.0, np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(ShapeError, match="use a GMM prior for d > 1"):
        histogram_prior(np.zeros((4, 2)), [0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        histogram_prior([0.5], [0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="start:stop:count"):
        parse_bins("0:10")
    with pytest.raises(DataError, match="empty"):
        BinPrior([0.0, 1.0], [0.0])


def test_edges_from_width_cover_labels():
    e = edges_from_width([0.3, 2.0, 4.9], 1.0)
    np.testing.assert_allclose(e, [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(parse_bins("0:1:4"), [0, 0.25, 0.5, 0.75, 1])


def test_bin_prior_round_trip(tmp_path, rng):
    y = rng.normal(5, 1, 100).clip(0, 10)
    p = histogram_prior(y, parse_bins("0:10:10"), lds=LDS("triangular", 3))
    path = p.save(tmp_path / "bins.npz")
    q = BinPrior.load(path)
    for name in ("edges", "counts", "smoothed"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert q.metadata["lds"] == {"kind": "triangular", "ks": 3, "sigma": 2.0, "mode": "constant"}
    assert isinstance(load_prior(path), BinPrior)
    np.savez(tmp_path / "bad.npz", edges=np.arange(4.0), counts=np.ones(2), smoothed=np.ones(2))
    msg = r"bad\.npz' holds an invalid bin prior: counts must have shape \(3,\)"
    with pytest.raises(DataError, match=msg):
        BinPrior.load(tmp_path / "bad.npz")


def test_weights_mean_one_and_follow_permutation():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    edges = parse_bins("0:10:10")

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.floats(0, 10), min_size=2, max_size=40),
        st.sampled_from(["inverse", "sqrt_inv"]),
        st.randoms(use_true_random=False),
    )
    def check(values, mode, rnd):
        y = np.array(values)
        p = histogram_prior(y, edges)
        w = reweighting_weights(y, p, mode)
        np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-12)
        perm = np.array(rnd.sample(range(len(y)), len(y)))
        np.testing.assert_allclose(reweighting_weights(y[perm], p, mode), w[perm], rtol=1e-12)
        # labels sharing a bin share a weight, and rarer bins never weigh less
        c = p.counts[p.bin_index(y)]
        assert (np.diff(w[np.argsort(c, kind="stable")]) <= 1e-12).all()

    check()
