"""Gaussian-mixture label priors for GAI (paper Sec. 3.3, Eq. 3.12-3.13).

The training-label distribution is modelled as ``p_train(y) = sum_k phi_k N(y; mu_k, Sigma_k)``
with ``phi`` the weights (K,), ``mu`` the means (K, d) and ``Sigma`` the covariances (K, d, d), all
float64 numpy arrays. A :class:`GMMPrior` is built from those arrays or fitted with
:func:`fit_gmm` (scikit-learn's ``GaussianMixture``), and stored as a plain ``.npz`` (arrays plus a
JSON metadata string, never a pickle).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError, DataError, NonFiniteError, ShapeError, check_choice, shape_str
from ..io import save_npz

# Weight sums this close to 1 are renormalised silently (float32 round trips, text exports).
_WEIGHT_SUM_TOL = 1e-4


class PriorFitWarning(UserWarning):
    """A prior fit finished but may be poor (e.g. EM did not converge)."""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=np.float64)  # always a copy: never alias the caller's arrays
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from exc
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise NonFiniteError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); fix the prior"
        )
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class GMMPrior:
    """A Gaussian mixture over labels: ``p(y) = sum_k weights[k] N(y; means[k], covariances[k])``.

    Args:
        weights: (K,) mixture weights, >= 0, summing to 1 (a drift below 1e-4 is renormalised).
        means: (K, d) component means; (K,) is read as d = 1.
        covariances: (K, d, d) symmetric positive-definite covariances; (K,) variances are read
            as d = 1, and (K, d) as diagonal covariances.
        metadata: JSON-serialisable dict (label representation, fit settings, ...).

    All arrays are copied to float64. ``log_prob`` uses one Cholesky factor per component,
    computed once here.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    metadata: dict = dataclasses.field(default_factory=dict)
    _chol: np.ndarray = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = _as_float_array(self.weights, "weights")
        mu = _as_float_array(self.means, "means")
        cov = _as_float_array(self.covariances, "covariances")
        if w.ndim != 1 or w.size == 0:
            raise ShapeError(f"weights must have shape (K,) with K >= 1, got {shape_str(w.shape)}")
        k = w.shape[0]
        if mu.ndim == 1:
            mu = mu[:, None]
        if mu.ndim != 2 or mu.shape[0] != k:
            raise ShapeError(
                f"means must have shape (K, d) = ({k}, d) to match weights (K={k}), got "
                f"{shape_str(mu.shape)}"
            )
        d = mu.shape[1]
        if cov.ndim == 1 and d == 1:
            cov = cov[:, None, None]
        elif cov.ndim == 2 and cov.shape == (k, d):
            cov = np.stack([np.diag(c) for c in cov])
        if cov.shape != (k, d, d):
            raise ShapeError(
                f"covariances must have shape (K, d, d) = ({k}, {d}, {d}) to match means, got "
                f"{shape_str(cov.shape)}; pass (K, d) for diagonal covariances"
            )
        if (w < 0).any():
            raise DataError(f"weights must be >= 0, got {w.tolist()}")
        total = float(w.sum())
        if abs(total - 1.0) > _WEIGHT_SUM_TOL:
            raise DataError(
                f"weights must sum to 1, got sum {total:.6g}; divide them by their sum first"
            )
        w = w / total
        asym = np.abs(cov - cov.transpose(0, 2, 1)).max(axis=(1, 2))
        scale = np.abs(cov).max(axis=(1, 2))
        bad = np.nonzero(asym > 1e-8 * np.maximum(scale, 1e-300))[0]
        if bad.size:
            raise DataError(
                f"covariances must be symmetric; component(s) {bad.tolist()} are not (largest "
                f"asymmetry {asym[bad].max():.3g}); pass (C + C^T) / 2"
            )
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        chol = np.empty_like(cov)
        for i in range(k):
            try:
                chol[i] = np.linalg.cholesky(cov[i])
            except np.linalg.LinAlgError:
                eig = float(np.linalg.eigvalsh(cov[i]).min())
                raise DataError(
                    f"covariances[{i}] is not positive definite (smallest eigenvalue {eig:.3g}); "
                    "add a small ridge (e.g. 1e-6 * I) or refit with a larger reg_covar"
                ) from None
        meta = dict(self.metadata or {})
        try:
            json.dumps(meta)
        except TypeError as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
        for name, value in (
            ("weights", w),
            ("means", mu),
            ("covariances", cov),
            ("metadata", meta),
            ("_chol", chol),
        ):
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        rep = self.metadata.get("label_representation", "unknown")
        return f"GMMPrior(K={self.n_components}, d={self.dim}, labels={rep!r})"

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def _labels(self, y: Any, name: str = "y") -> np.ndarray:
        arr = np.asarray(y, dtype=np.float64)
        if arr.ndim == 1 and self.dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ShapeError(
                f"{name} must have shape (N, {self.dim}) for this {self.dim}-D prior"
                + (" (or (N,))" if self.dim == 1 else "")
                + f", got {shape_str(arr.shape)}; was the prior fitted on another label "
                "representation?"
            )
        return arr

    def component_log_prob(self, y: Any) -> np.ndarray:
        """log N(y_n; mu_k, Sigma_k) for every sample and component: (N, d) -> (N, K)."""
        from scipy.linalg import solve_triangular

        y = self._labels(y)
        n, d = y.shape
        out = np.empty((n, self.n_components))
        for k in range(self.n_components):
            z = solve_triangular(self._chol[k], (y - self.means[k]).T, lower=True)  # (d, N)
            logdet = 2.0 * np.log(np.diag(self._chol[k])).sum()
            out[:, k] = -0.5 * (d * math.log(2 * math.pi) + logdet + (z * z).sum(axis=0))
        return out

    def log_prob(self, y: Any) -> np.ndarray:
        """log p(y) = logsumexp_k [log phi_k + log N(y; mu_k, Sigma_k)]: (N, d) or (N,) -> (N,)."""
        from scipy.special import logsumexp

        with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf, which logsumexp takes
            logw = np.log(self.weights)
        return logsumexp(self.component_log_prob(y) + logw, axis=1)

    def sample(self, n: int, seed: int | None = 0) -> np.ndarray:
        """Draw ``n`` labels, (n, d) float64, reproducibly from ``seed``."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n must be an integer >= 0, got {n!r}")
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.n_components, size=int(n), p=self.weights)
        z = rng.standard_normal((int(n), self.dim))
        return self.means[comp] + np.einsum("nij,nj->ni", self._chol[comp], z)

    def summary(self, labels: Any = None) -> dict[str, Any]:
        """Plain dict for printing: sizes, weights, means (d <= 3) or their norms, mean log p."""
        out: dict[str, Any] = {
            "kind": "gmm",
            "K": self.n_components,
            "d": self.dim,
            "weights": self.weights.tolist(),
        }
        if self.dim == 1:
            out["means"] = self.means[:, 0].tolist()
            out["stds"] = np.sqrt(self.covariances[:, 0, 0]).tolist()
        elif self.dim <= 3:
            out["means"] = self.means.tolist()
        else:
            out["mean_norms"] = np.linalg.norm(self.means, axis=1).tolist()
        if labels is not None:
            out["N"] = int(np.asarray(labels).shape[0])
            out["avg_log_likelihood"] = float(self.log_prob(labels).mean())
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``weights``, ``means``, ``covariances`` and a JSON ``metadata`` string to ``.npz``,
        atomically (a failed write leaves no file)."""
        meta = {"kind": "gmm", **self.metadata}
        meta.setdefault("created", _utc_now())
        return save_npz(
            path,
            weights=self.weights,
            means=self.means,
            covariances=self.covariances,
            metadata=np.array(json.dumps(meta)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GMMPrior":
        """Read a prior written by :meth:`save` (no pickles); bad files raise :class:`DataError`."""
        arrays, meta = read_prior_npz(path, ("weights", "means", "covariances"), kind="gmm")
        try:
            return cls(arrays["weights"], arrays["means"], arrays["covariances"], meta)
        except ValueError as exc:
            raise DataError(f"prior file {str(path)!r} holds an invalid GMM: {exc}") from exc


def read_prior_npz(
    path: str | os.PathLike, keys: tuple[str, ...], kind: str
) -> tuple[dict[str, np.ndarray], dict]:
    """Load ``keys`` and the JSON ``metadata`` from a prior ``.npz``; every failure is a DataError
    that names the file (and the key)."""
    path = Path(path)
    where = f"prior file {str(path)!r}"
    if not path.is_file():
        raise DataError(
            f"{where} does not exist; fit one with `ihmr fit-prior LABELS --out {path}`"
        )

    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataError(
            f"{where} is corrupt or not an .npz archive (numpy cannot read it: "
            f"{type(exc).__name__}); refit it with `ihmr fit-prior`"
        ) from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{where} is a single .npy array, not an .npz prior; save it with .save()")
    with npz:
        try:
            # metadata is optional so that hand-made files (np.savez(weights=, means=,
            # covariances=)) load too
            try:
                meta = json.loads(str(npz["metadata"])) if "metadata" in npz.files else {}
                if not isinstance(meta, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise DataError(
                    f"{where}: key 'metadata' is not a JSON object string ({exc})"
                ) from exc
            if kind != "any" and meta.get("kind", kind) != kind:
                raise DataError(
                    f"{where} holds a {meta.get('kind')!r} prior, not a {kind!r} prior; load it "
                    "with ihmr.priors.load_prior"
                )
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(
                    f"{where} lacks key(s) {missing} (has {sorted(npz.files)}); refit it with "
                    "`ihmr fit-prior`"
                )
            arrays = {k: np.asarray(npz[k]) for k in keys}
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(
                f"{where}: cannot read its arrays ({type(exc).__name__}: {exc})"
            ) from exc
    for k, a in arrays.items():
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{where}: key {k!r} must be numeric, got dtype {a.dtype}")
    return arrays, meta


def fit_gmm(
    labels: Any,
    n_components: int,
    *,
    covariance_type: str = "full",
    seed: int = 0,
    max_samples: int | None = None,
    reg_covar: float = 1e-6,
    max_iter: int = 200,
    n_init: int = 1,
    metadata: Mapping[str, Any] | None = None,
) -> GMMPrior:
    """Fit a :class:`GMMPrior` to training labels with scikit-learn's ``GaussianMixture``.

    Args:
        labels: (N,) or (N, d) finite labels.
        n_components: K >= 1 (the paper uses 8 for age, 16 for depth and IHMR).
        covariance_type: "full" or "diag"; a diagonal fit is stored as (K, d, d) matrices.
        seed: seeds k-means initialisation and the subsample.
        max_samples: fit on a random subsample of this size (without replacement) when N is larger.
        reg_covar: ridge added to each covariance diagonal (keeps them positive definite).
        max_iter, n_init: EM iterations and restarts.
        metadata: merged into the prior's metadata (e.g. ``{"label_representation": "rotmat"}``).

    Returns:
        the fitted prior; metadata records N, the fit settings and the scikit-learn version.
        A non-converged EM is reported as a :class:`PriorFitWarning` with advice.
    """
    import sklearn

    y = _label_matrix(labels)
    _check_fit_settings(n_components, covariance_type, max_samples, reg_covar, max_iter, n_init)
    n_total = y.shape[0]
    if max_samples is not None and n_total > max_samples:
        idx = np.random.default_rng(seed).choice(n_total, size=int(max_samples), replace=False)
        y = y[np.sort(idx)]
    n = y.shape[0]
    if n < n_components:
        raise DataError(
            f"cannot fit {n_components} components to {n} label(s): a GMM needs at least one "
            f"sample per component; lower n_components or give more labels"
            + (f" (or raise max_samples={max_samples})" if n < n_total else "")
        )
    gm = _run_em(y, n_components, covariance_type, reg_covar, max_iter, n_init, seed)
    cov = gm.covariances_
    if covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in cov])
    meta = {
        "kind": "gmm",
        "label_representation": "unknown",
        "n_samples_fitted": int(n),
        "n_labels": int(n_total),
        "seed": seed,
        "covariance_type": covariance_type,
        "reg_covar": reg_covar,
        "max_iter": int(max_iter),
        "n_init": int(n_init),
        "converged": bool(gm.converged_),
        "n_iter": int(gm.n_iter_),
        "sklearn_version": sklearn.__version__,
        "created": _utc_now(),
    }
    meta.update(dict(metadata or {}))
    return GMMPrior(gm.weights_, gm.means_, cov, meta)


def _label_matrix(labels: Any) -> np.ndarray:
    """``labels`` (N,) or (N, d) as a finite float64 (N, d) array, or a clear error."""
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"labels must be real numbers, got dtype {y.dtype}")
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ShapeError(
            f"labels must have shape (N,) or (N, d), got {shape_str(y.shape)}; flatten each "
            "label first, e.g. labels.reshape(len(labels), -1)"
        )
    bad_rows = int((~np.isfinite(y)).any(axis=1).sum())
    if bad_rows:
        raise DataError(
            f"labels contain {bad_rows} of {y.shape[0]} row(s) with NaN or inf; drop them first, "
            "e.g. labels[np.isfinite(labels).all(axis=1)]"
        )
    return y


def _check_fit_settings(
    n_components: Any,
    covariance_type: str,
    max_samples: int | None,
    reg_covar: float,
    max_iter: int,
    n_init: int,
) -> None:
    """Raise :class:`~ihmr.errors.ConfigError` naming the first invalid setting of
    :func:`fit_gmm`."""
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"n_components must be an integer >= 1, got {n_components!r}")
    check_choice(covariance_type, ("full", "diag"), "covariance_type")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples must be >= 1 or None, got {max_samples!r}")
    if not (reg_covar >= 0 and math.isfinite(reg_covar)):
        raise ConfigError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")
    if max_iter < 1 or n_init < 1:
        raise ConfigError(f"max_iter and n_init must be >= 1, got {max_iter} and {n_init}")


def _run_em(
    y: np.ndarray,
    n_components: int,
    covariance_type: str,
    reg_covar: float,
    max_iter: int,
    n_init: int,
    seed: int,
) -> Any:
    """scikit-learn's ``GaussianMixture`` fitted to ``y`` (N, d); a non-converged EM becomes a
    :class:`PriorFitWarning` with advice, other warnings pass through."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        n_components=int(n_components),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        max_iter=int(max_iter),
        n_init=int(n_init),
        random_state=seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        gm.fit(y)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            warnings.warn(
                f"the GMM fit (K={n_components}, N={y.shape[0]}, d={y.shape[1]}) did not converge "
                f"in {max_iter} EM iterations; raise max_iter, lower n_components, or raise "
                f"reg_covar (now {reg_covar:g}). The prior is usable but may be poor.",
                PriorFitWarning,
                stacklevel=3,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return gm
