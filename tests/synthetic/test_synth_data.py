"""Data construction of the synthetic benchmark (App. B.1), against scipy's distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ihmr.synthetic import data as D
from ihmr.synthetic import spec as S

P = S.PROTOCOL_1D


@pytest.mark.parametrize("skew", S.SKEWS)
def test_normal_labels_follow_p_train(skew):
    d = D.make_dataset("normal", skew, 3, P)
    sd = S.NORMAL_SIGMA[skew]
    # Truncation to [0, 10] is at >= 5 sigma: the plain normal CDF is the reference.
    assert stats.kstest(d.y_train[:, 0], stats.norm(5.0, sd).cdf).pvalue > 1e-3
    assert d.y_train.shape == (P.n_train, 1)


@pytest.mark.parametrize("skew", S.SKEWS)
def test_exponential_labels_follow_p_train(skew):
    d = D.make_dataset("exponential", skew, 4, P)
    rate = S.EXP_RATE[skew]
    trunc = stats.truncexpon(b=10.0 * rate, scale=1.0 / rate)
    assert stats.kstest(d.y_train[:, 0], trunc.cdf).pvalue > 1e-3


def test_mvn_labels_follow_p_train():
    d = D.make_dataset("mvn", "moderate", 5, S.PROTOCOL_2D)
    cov = S.MVN_SCALE["moderate"] * np.array(S.MVN_BASE_COV)
    for k in range(2):
        assert stats.kstest(d.y_train[:, k], stats.norm(0, np.sqrt(cov[k, k])).cdf).pvalue > 1e-3
    # whitened labels are independent standard normals
    white = d.y_train @ np.linalg.inv(np.linalg.cholesky(cov)).T
    assert abs(np.corrcoef(white.T)[0, 1]) < 0.1
    assert stats.kstest(white[:, 1], "norm").pvalue > 1e-3


@pytest.mark.parametrize("dist", ["normal", "exponential", "mvn"])
def test_noise_inputs_and_noise_free_test_set(dist):
    proto = S.protocol_for(dist)
    d = D.make_dataset(dist, "high", 1, proto)
    # observed = noise-free + eps, eps ~ N(0, 1)
    np.testing.assert_allclose(d.y_train - d.y_clean, d.noise, atol=1e-12)
    assert stats.kstest(d.noise.ravel(), "norm").pvalue > 1e-3
    assert abs(d.noise.std() - S.NOISE_SIGMA) < 0.05
    lo, hi = S.label_range(dist)
    if dist == "mvn":
        M = d.oracle_matrix
        np.testing.assert_allclose(d.x_train, d.y_clean @ M.T, rtol=1e-12)
        np.testing.assert_allclose(d.x_test, d.y_test @ M.T, rtol=1e-12)
        assert np.linalg.cond(M) <= D.MAX_CONDITION
    else:
        np.testing.assert_allclose(d.x_train, (d.y_train - d.noise - D.LINEAR_B) / D.LINEAR_K)
        np.testing.assert_allclose(d.x_test, (d.y_test - D.LINEAR_B) / D.LINEAR_K)
    np.testing.assert_allclose(d.oracle(d.x_test), d.y_test, atol=1e-9)  # noise-free test
    for y in (d.y_val, d.y_test):
        for k in range(y.shape[1]):  # uniform on the range
            assert stats.kstest(y[:, k], stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def test_trimming_keeps_n_labels_inside_the_range(monkeypatch):
    # A wide normal puts ~30% of the draws outside [0, 10]: all must be dropped, n kept, and
    # the kept labels follow the normal truncated to the range.
    monkeypatch.setitem(S.NORMAL_SIGMA, "high", 5.0)
    y = D.sample_labels("normal", "high", 4000, np.random.default_rng(0))
    assert y.shape == (4000, 1)
    assert y.min() >= 0.0 and y.max() <= 10.0
    trunc = stats.truncnorm(-1.0, 1.0, loc=5.0, scale=5.0)
    assert stats.kstest(y[:, 0], trunc.cdf).pvalue > 1e-3


def test_nonlinear_inputs_invert_the_oracle():
    for fn in S.NONLINEAR_FUNCTIONS:
        d = D.make_dataset("normal", "moderate", 0, S.PROTOCOL_NONLINEAR, fn)
        np.testing.assert_allclose(D.nonlinear_oracle(fn, d.x_train), d.y_clean, atol=1e-9)
        np.testing.assert_allclose(d.oracle(d.x_test), d.y_test, atol=1e-9)
        xs = np.linspace(-3, 3, 1001)
        assert (np.diff(D.nonlinear_oracle(fn, xs)) > 0).all()  # invertible


def test_density_matches_scipy():
    y = np.linspace(0.1, 9.9, 7)[:, None]
    np.testing.assert_allclose(
        D.train_density("normal", "moderate", y)[:], stats.norm(5, 0.75).pdf(y[:, 0]), rtol=1e-12
    )
    np.testing.assert_allclose(
        D.train_density("exponential", "low", y), stats.expon(scale=1.0).pdf(y[:, 0]), rtol=1e-12
    )
    y2 = np.random.default_rng(0).normal(size=(5, 2))
    cov = S.MVN_SCALE["high"] * np.array(S.MVN_BASE_COV)
    np.testing.assert_allclose(
        D.train_density("mvn", "high", y2),
        stats.multivariate_normal(np.zeros(2), cov).pdf(y2),
        rtol=1e-10,
    )


def test_seeded_and_reproducible():
    a = D.make_dataset("exponential", "low", 7, P)
    b = D.make_dataset("exponential", "low", 7, P)
    c = D.make_dataset("exponential", "low", 8, P)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.allclose(a.x_train, c.x_train)


def test_mvn_skews_reproduce_the_papers_vanilla_limit():
    # Least squares of y on the noisy input converges to S = Sigma (Sigma + I)^-1; its MSE on
    # the uniform test square is (100/12)/2 ||(Sigma + I)^-1||_F^2 (the spec's documented
    # choice of the MVN covariances), computed here by Monte Carlo.
    rng = np.random.default_rng(0)
    y = rng.uniform(-5, 5, size=(200_000, 2))
    for skew, paper in zip(S.SKEWS, S.PAPER_TABLE4["mvn"]["vanilla"], strict=True):
        cov = S.MVN_SCALE[skew] * np.array(S.MVN_BASE_COV)
        A = cov @ np.linalg.inv(cov + np.eye(2))
        mse = ((y @ A.T - y) ** 2).mean()
        assert abs(mse / paper - 1) < 0.05, (skew, mse, paper)


def test_bad_names_suggest():
    with pytest.raises(ValueError, match="did you mean 'normal'"):
        D.make_dataset("normall", "high", 0, P)
    with pytest.raises(ValueError, match="skew"):
        D.make_dataset("normal", "hihg", 0, P)
