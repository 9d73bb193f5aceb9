"""Construction of the synthetic imbalanced regression data (paper App. B.1, Eq. B.1).

Training set: draw labels ``y`` from the skewed ``p_train`` (trimmed to the label range), draw
noise ``eps ~ N(0, I)``, take the noise-free label ``y_clean = y - eps`` and the input
``x = f^-1(y_clean)``. So ``y = f(x) + eps`` (Eq. B.1) and the *observed* labels follow
``p_train`` exactly. Validation and test sets: labels uniform on the range, ``x = f^-1(y)``, no
noise.

Oracles ``f``: 1-D linear ``y = K x + B`` (K = 1, B = 0); 2-D linear ``x = M y`` with a random
2 x 2 matrix ``M`` (entries N(0, 0.01^2) as in the release, redrawn until its condition number
is at most 5 so that no seed is a badly conditioned problem); four monotone 1-D nonlinear
functions (Fig. 4), inverted numerically by bisection.

Arrays are float64 numpy; every draw comes from one ``numpy.random.Generator`` seeded by
``(seed, distribution, skew, function)``, so a dataset is reproducible on its own.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConfigError, check_choice
from ..priors.gmm import fit_gmm
from .spec import (
    DISTRIBUTIONS,
    EXP_RATE,
    MVN_BASE_COV,
    MVN_SCALE,
    NOISE_SIGMA,
    NONLINEAR_FUNCTIONS,
    NORMAL_SIGMA,
    PRIOR_SAMPLES,
    SKEWS,
    Protocol,
    label_range,
)

LINEAR_K = 1.0
LINEAR_B = 0.0
MAX_CONDITION = 5.0


def mvn_covariance(skew: str) -> np.ndarray:
    """(2, 2) training-label covariance of the MVN setting at ``skew``."""
    return MVN_SCALE[skew] * np.array(MVN_BASE_COV)


def sample_labels(distribution: str, skew: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels from ``p_train`` trimmed to the label range, shape (n, d), float64.

    Draws in rounds of ``2 n`` and keeps the labels inside the range (all dimensions), in the
    order drawn, until ``n`` are kept.
    """
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    check_choice(skew, SKEWS, "skew")
    lo, hi = label_range(distribution)
    kept: list[np.ndarray] = []
    total = 0
    while total < n:
        m = 2 * n
        if distribution == "normal":
            y = rng.normal(5.0, NORMAL_SIGMA[skew], size=(m, 1))
        elif distribution == "exponential":
            y = rng.exponential(1.0 / EXP_RATE[skew], size=(m, 1))
        else:
            y = rng.multivariate_normal(np.zeros(2), mvn_covariance(skew), size=m)
        y = y[((y >= lo) & (y <= hi)).all(axis=1)]
        kept.append(y)
        total += len(y)
    return np.concatenate(kept)[:n]


def train_density(distribution: str, skew: str, y: np.ndarray) -> np.ndarray:
    """The true (untrimmed) training-label density ``p_train(y)`` at ``y`` (n, d), shape (n,).

    Reweighting normalises ``1 / p_train`` over the batch, so the trimming constant cancels.
    """
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if distribution == "normal":
        s = NORMAL_SIGMA[skew]
        return np.exp(-0.5 * ((y[:, 0] - 5.0) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    if distribution == "exponential":
        rate = EXP_RATE[skew]
        return np.where(y[:, 0] >= 0, rate * np.exp(-rate * y[:, 0]), 0.0)
    cov = mvn_covariance(skew)
    inv = np.linalg.inv(cov)
    quad = np.einsum("ni,ij,nj->n", y, inv, y)
    return np.exp(-0.5 * quad) / (2 * math.pi * math.sqrt(np.linalg.det(cov)))


# --- oracles ---------------------------------------------------------------------------------


def nonlinear_oracle(name: str, x: np.ndarray) -> np.ndarray:
    """The four monotone oracles of the nonlinear benchmark (Fig. 4), mapping x in about
    [-2, 2] onto y in about [0, 10]."""
    check_choice(name, NONLINEAR_FUNCTIONS, "function")
    if name == "cubic":
        return 5.0 + 0.625 * x**3
    if name == "sinh":
        return 5.0 + 5.0 * np.sinh(x) / math.sinh(2.0)
    if name == "wave":
        return 5.0 + 2.5 * x + 0.75 * np.sin(3.0 * x)  # slope >= 0.25: still invertible
    return 5.0 + 1.5 * x + 2.0 * np.tanh(2.0 * x)


def nonlinear_inverse(name: str, y: np.ndarray, iters: int = 80) -> np.ndarray:
    """``f^-1(y)`` for a nonlinear oracle, by vectorised bisection (all four are increasing)."""
    y = np.asarray(y, dtype=np.float64)
    lo = np.full_like(y, -1.0)
    hi = np.full_like(y, 1.0)
    while (nonlinear_oracle(name, lo) > y).any():  # widen the bracket until it holds every y
        lo = np.where(nonlinear_oracle(name, lo) > y, 2 * lo, lo)
    while (nonlinear_oracle(name, hi) < y).any():
        hi = np.where(nonlinear_oracle(name, hi) < y, 2 * hi, hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = nonlinear_oracle(name, mid) < y
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def random_oracle_matrix(rng: np.random.Generator) -> np.ndarray:
    """The 2-D oracle's (2, 2) matrix ``M`` (``x = M y``): N(0, 0.01^2) entries, cond <= 5."""
    while True:
        m = 0.01 * rng.standard_normal((2, 2))
        if np.linalg.cond(m) <= MAX_CONDITION:
            return m


@dataclasses.dataclass
class SynthData:
    """One synthetic dataset (float64 numpy arrays; n = samples, din/d = input/label dims).

    ``y_train`` are the observed labels (follow p_train), ``y_clean = y_train - noise`` the
    noise-free ones; ``x_* = f^-1(y_clean)`` for training and ``f^-1(y)`` for validation/test.
    ``density_train`` is ``p_train(y_train)`` (n,), used by the reweighting baseline.
    """

    distribution: str
    skew: str
    seed: int
    function: str
    x_train: np.ndarray
    y_train: np.ndarray
    y_clean: np.ndarray
    noise: np.ndarray
    density_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    oracle_matrix: np.ndarray | None = None

    def oracle(self, x: np.ndarray) -> np.ndarray:
        """The oracle ``f(x)``: (n, din) -> (n, d)."""
        if self.function == "linear":
            if self.oracle_matrix is not None:
                return np.linalg.solve(self.oracle_matrix, np.asarray(x).T).T
            return LINEAR_K * np.asarray(x) + LINEAR_B
        return nonlinear_oracle(self.function, np.asarray(x))


def make_dataset(
    distribution: str, skew: str, seed: int, protocol: Protocol, function: str = "linear"
) -> SynthData:
    """Build the training, validation and test sets of one setting (App. B.1).

    Args:
        distribution: "normal", "exponential" (1-D) or "mvn" (2-D, linear only).
        skew: "high", "moderate" or "low".
        seed: integer seed of this dataset.
        protocol: gives n_train, n_val and n_test.
        function: "linear" or one of the nonlinear oracles (1-D distributions only).
    """
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    check_choice(skew, SKEWS, "skew")
    check_choice(function, ("linear",) + NONLINEAR_FUNCTIONS, "function")
    if distribution == "mvn" and function != "linear":
        raise ConfigError(
            "the nonlinear oracles are 1-D: use distribution 'normal' or 'exponential'"
        )
    key = [
        int(seed),
        DISTRIBUTIONS.index(distribution),
        SKEWS.index(skew),
        (("linear",) + NONLINEAR_FUNCTIONS).index(function),
    ]
    rng = np.random.default_rng(key)
    d = 2 if distribution == "mvn" else 1
    lo, hi = label_range(distribution)
    matrix = random_oracle_matrix(rng) if distribution == "mvn" else None

    def inverse(y: np.ndarray) -> np.ndarray:
        if matrix is not None:
            return y @ matrix.T
        if function == "linear":
            return (y - LINEAR_B) / LINEAR_K
        return nonlinear_inverse(function, y)

    y_train = sample_labels(distribution, skew, protocol.n_train, rng)
    noise = NOISE_SIGMA * rng.standard_normal((protocol.n_train, d))
    y_clean = y_train - noise
    y_val = rng.uniform(lo, hi, size=(protocol.n_val, d))
    y_test = rng.uniform(lo, hi, size=(protocol.n_test, d))
    return SynthData(
        distribution=distribution,
        skew=skew,
        seed=int(seed),
        function=function,
        x_train=inverse(y_clean),
        y_train=y_train,
        y_clean=y_clean,
        noise=noise,
        density_train=train_density(distribution, skew, y_train),
        x_val=inverse(y_val),
        y_val=y_val,
        x_test=inverse(y_test),
        y_test=y_test,
        oracle_matrix=matrix,
    )


def fit_true_prior(distribution: str, skew: str, n_components: int, seed: int = 0):
    """GAI prior: a GMM fitted with :func:`ihmr.priors.fit_gmm` to 10,000 samples of the true
    (trimmed) training distribution. It describes ``p_train``, not a drawn dataset, so one fit
    serves every seed of a setting."""
    rng = np.random.default_rng(
        [int(seed), 7919, DISTRIBUTIONS.index(distribution), SKEWS.index(skew)]
    )
    labels = sample_labels(distribution, skew, PRIOR_SAMPLES, rng)
    return fit_gmm(labels, n_components, seed=seed)
