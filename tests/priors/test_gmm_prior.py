"""GMMPrior and fit_gmm, against scipy, scikit-learn, closed forms and quadrature."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ihmr.errors import DataError, ShapeError
from ihmr.priors import BinPrior, GMMPrior, PriorFitWarning, fit_gmm, load_prior


def random_gmm(rng, k=3, d=2):
    w = rng.uniform(0.2, 1.0, k)
    a = rng.normal(size=(k, d, d))
    cov = a @ a.transpose(0, 2, 1) + 0.3 * np.eye(d)
    return w / w.sum(), rng.normal(scale=3.0, size=(k, d)), cov


def scipy_log_prob(w, mu, cov, y):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    comp = np.stack(
        [multivariate_normal(m, c).logpdf(y) for m, c in zip(mu, cov, strict=True)], axis=-1
    )
    return logsumexp(comp.reshape(len(y), -1) + np.log(w), axis=1)


@pytest.mark.parametrize("d", [1, 3])
def test_log_prob_matches_scipy(rng, d):
    w, mu, cov = random_gmm(rng, k=3, d=d)
    y = rng.normal(scale=4.0, size=(50, d))
    prior = GMMPrior(w, mu, cov)
    np.testing.assert_allclose(prior.log_prob(y), scipy_log_prob(w, mu, cov, y), rtol=1e-10)
    assert prior.n_components == 3 and prior.dim == d


def test_log_prob_1d_accepts_flat_labels_and_is_stable_far_away(rng):
    prior = GMMPrior([0.3, 0.7], [0.0, 1.0], [1.0, 0.25])  # (K,) means and variances: d = 1
    y = np.array([0.0, 2.0, 1e3, -1e4])
    lp = prior.log_prob(y)
    assert lp.shape == (4,) and np.isfinite(lp).all()
    # at 1e3 the narrow component is negligible: log p = log 0.3 + log N(1e3; 0, 1)
    np.testing.assert_allclose(lp[2], np.log(0.3) - 0.5 * np.log(2 * np.pi) - 0.5e6, rtol=1e-12)
    ref = np.log(
        0.3 * np.exp(-0.5 * y[:2] ** 2) / np.sqrt(2 * np.pi)
        + 0.7 * np.exp(-0.5 * (y[:2] - 1) ** 2 / 0.25) / np.sqrt(2 * np.pi * 0.25)
    )
    np.testing.assert_allclose(lp[:2], ref, rtol=1e-12)


def test_zero_weight_component_is_ignored(rng):
    w, mu, cov = random_gmm(rng, k=2, d=2)
    y = rng.normal(size=(5, 2))
    both = GMMPrior([1.0, 0.0], mu, cov).log_prob(y)
    one = GMMPrior([1.0], mu[:1], cov[:1]).log_prob(y)
    np.testing.assert_allclose(both, one, rtol=1e-12)


def test_validation_messages(rng):
    w, mu, cov = random_gmm(rng, k=2, d=2)
    p = GMMPrior(w * (1 + 1e-6), mu, cov)  # tiny drift is renormalised
    assert abs(p.weights.sum() - 1) < 1e-15
    with pytest.raises(ValueError, match="sum to 1"):
        GMMPrior(w * 2, mu, cov)
    with pytest.raises(ValueError, match=">= 0"):
        GMMPrior([1.5, -0.5], mu, cov)
    with pytest.raises(ShapeError, match=r"means must have shape \(K, d\) = \(2, d\)"):
        GMMPrior(w, mu[:1], cov)
    with pytest.raises(ShapeError, match=r"covariances must have shape \(K, d, d\) = \(2, 2, 2\)"):
        GMMPrior(w, mu, cov[:, :1])
    bad = cov.copy()
    bad[1, 0, 1] += 1.0
    with pytest.raises(ValueError, match=r"symmetric; component\(s\) \[1\]"):
        GMMPrior(w, mu, bad)
    notpd = cov.copy()
    notpd[0] = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(ValueError, match=r"covariances\[0\] is not positive definite.*reg_covar"):
        GMMPrior(w, mu, notpd)
    with pytest.raises(ValueError, match="1 non-finite"):
        GMMPrior(w, np.where(np.arange(4).reshape(2, 2) == 3, np.nan, mu), cov)
    with pytest.raises(ShapeError, match=r"\(N, 2\)"):
        GMMPrior(w, mu, cov).log_prob(np.zeros((3, 5)))


def test_diagonal_covariances_and_no_aliasing():
    mu = np.zeros((2, 3))
    var = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    p = GMMPrior([0.5, 0.5], mu, var)
    np.testing.assert_array_equal(p.covariances[1], np.diag([4.0, 5.0, 6.0]))
    mu[:] = 7.0  # the caller's array changes; the prior must not
    assert (p.means == 0).all()


def test_sample_moments_match_closed_form(rng):
    w, mu, cov = random_gmm(rng, k=3, d=2)
    p = GMMPrior(w, mu, cov)
    s = p.sample(200_000, seed=1)
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    np.testing.assert_allclose(s.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(
        np.cov(s.T, bias=True), second - np.outer(mean, mean), rtol=0.02, atol=0.03
    )
    np.testing.assert_array_equal(p.sample(10, seed=3), p.sample(10, seed=3))


def test_save_load_round_trip(tmp_path, rng):
    w, mu, cov = random_gmm(rng, k=4, d=3)
    p = GMMPrior(w, mu, cov, {"label_representation": "rotmat", "n_samples_fitted": 12})
    path = p.save(tmp_path / "sub" / "prior.npz")
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only, no pickles
        assert sorted(npz.files) == ["covariances", "means", "metadata", "weights"]
        meta = json.loads(str(npz["metadata"]))
    assert meta["kind"] == "gmm" and meta["label_representation"] == "rotmat" and "created" in meta
    q = GMMPrior.load(path)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert q.metadata["n_samples_fitted"] == 12
    assert isinstance(load_prior(path), GMMPrior)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["prior.npz"]  # no temp files left


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    p = GMMPrior([1.0], [[0.0]], [[[1.0]]])

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        p.save(tmp_path / "prior.npz")
    assert list(tmp_path.iterdir()) == []


def test_load_errors_name_file_and_key(tmp_path):
    with pytest.raises(DataError, match=r"missing\.npz' does not exist.*fit-prior"):
        GMMPrior.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip\n")
    with pytest.raises(DataError, match=r"text\.npz' is corrupt or not an \.npz archive"):
        GMMPrior.load(tmp_path / "text.npz")
    good = GMMPrior([1.0], [[0.0]], [[[1.0]]]).save(tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])  # an interrupted copy
    with pytest.raises(DataError, match=r"cut\.npz' is corrupt"):
        GMMPrior.load(tmp_path / "cut.npz")
    flipped = bytearray(good)
    flipped[200] ^= 0xFF  # a damaged member header: the archive opens, the array does not
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=r"flip\.npz'"):
        GMMPrior.load(tmp_path / "flip.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        GMMPrior.load(tmp_path / "one.npy")
    np.savez(tmp_path / "nokey.npz", weights=np.ones(1), means=np.zeros((1, 2)))
    with pytest.raises(DataError, match=r"nokey\.npz' lacks key\(s\) \['covariances'\]"):
        GMMPrior.load(tmp_path / "nokey.npz")
    np.savez(
        tmp_path / "shape.npz",
        weights=np.ones(1),
        means=np.zeros((1, 2)),
        covariances=np.ones((1, 3, 3)),
    )
    with pytest.raises(DataError, match=r"shape\.npz' holds an invalid GMM: covariances must have"):
        GMMPrior.load(tmp_path / "shape.npz")
    np.savez(
        tmp_path / "meta.npz",
        weights=np.ones(1),
        means=np.zeros((1, 1)),
        covariances=np.ones((1, 1, 1)),
        metadata=np.array("{oops"),
    )
    with pytest.raises(DataError, match="key 'metadata' is not a JSON"):
        GMMPrior.load(tmp_path / "meta.npz")
    BinPrior(np.arange(3.0), [1.0, 2.0]).save(tmp_path / "bins.npz")
    with pytest.raises(DataError, match="holds a 'bins' prior, not a 'gmm'"):
        GMMPrior.load(tmp_path / "bins.npz")


def test_hand_made_file_without_metadata_loads(tmp_path):
    np.savez(
        tmp_path / "ref.npz",
        weights=np.ones(1),
        means=np.zeros((1, 1)),
        covariances=np.ones((1, 1, 1)),
    )
    assert GMMPrior.load(tmp_path / "ref.npz").metadata == {}


def test_fit_single_component_is_the_sample_moments(rng):
    y = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]])
    p = fit_gmm(y, 1, reg_covar=1e-6)
    np.testing.assert_allclose(p.means[0], y.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        p.covariances[0], np.cov(y.T, bias=True) + 1e-6 * np.eye(3), rtol=1e-9
    )
    d = fit_gmm(y, 1, covariance_type="diag")
    np.testing.assert_allclose(d.covariances[0], np.diag(y.var(0) + 1e-6), rtol=1e-9, atol=1e-15)
    assert d.metadata["covariance_type"] == "diag" and d.metadata["n_samples_fitted"] == 200


def test_fit_recovers_two_separated_components(rng):
    y = np.concatenate([rng.normal(-5.0, 1.0, 300), rng.normal(5.0, 0.5, 100)])
    p = fit_gmm(y, 2, seed=0, max_iter=50)
    order = np.argsort(p.means[:, 0])
    np.testing.assert_allclose(p.weights[order], [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(p.means[order, 0], [-5.0, 5.0], atol=0.2)
    np.testing.assert_allclose(np.sqrt(p.covariances[order, 0, 0]), [1.0, 0.5], rtol=0.15)
    q = fit_gmm(y, 2, seed=0, max_iter=50)
    np.testing.assert_array_equal(p.means, q.means)  # seeded: reproducible


def test_fit_subsamples_without_replacement(rng):
    y = rng.normal(size=(500, 2))
    p = fit_gmm(y, 1, max_samples=100, seed=4)
    idx = np.random.default_rng(4).choice(500, size=100, replace=False)
    np.testing.assert_allclose(p.means[0], y[idx].mean(0), rtol=1e-10)
    assert p.metadata["n_samples_fitted"] == 100 and p.metadata["n_labels"] == 500


def test_fit_bad_input():
    y = np.zeros((10, 2))
    y[3, 1] = np.nan
    y[7, 0] = np.inf
    with pytest.raises(DataError, match=r"2 of 10 row\(s\) with NaN or inf"):
        fit_gmm(y, 2)
    with pytest.raises(DataError, match="cannot fit 8 components to 5 label"):
        fit_gmm(np.arange(5.0), 8)
    with pytest.raises(ValueError, match="did you mean 'diag'"):
        fit_gmm(np.arange(5.0), 1, covariance_type="diagonal")
    with pytest.raises(ShapeError, match="flatten"):
        fit_gmm(np.zeros((5, 2, 2)), 1)


def test_fit_convergence_warning_has_advice(rng):
    y = np.concatenate([rng.normal(0, 1, 200), rng.normal(3, 1, 200)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = fit_gmm(y, 4, max_iter=1)
    msgs = [str(w.message) for w in caught if issubclass(w.category, PriorFitWarning)]
    assert len(msgs) == 1 and "raise max_iter" in msgs[0]
    assert p.metadata["converged"] is False


def test_diabetes_fit_matches_sklearn_and_integrates_to_one():
    from scipy.integrate import quad
    from sklearn.datasets import load_diabetes
    from sklearn.mixture import GaussianMixture

    target = load_diabetes().target  # 442 real disease-progression scores, 25..346
    p = fit_gmm(target, 3, seed=0, max_iter=100)
    total, err = quad(lambda t: np.exp(p.log_prob(np.array([t]))[0]), -np.inf, np.inf, limit=200)
    assert abs(total - 1.0) < 1e-6, (total, err)
    # our log density equals scikit-learn's own score_samples of the same fit
    gm = GaussianMixture(3, random_state=0, max_iter=100).fit(target[:, None])
    np.testing.assert_allclose(p.log_prob(target), gm.score_samples(target[:, None]), rtol=1e-9)
