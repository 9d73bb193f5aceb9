"""Train many tiny regressors as one tensor program, with per-model optimiser state.

Models are laid out as ``(G, R)``: ``G`` datasets (one per setting and seed) times ``R`` methods
(a subset of :data:`~ihmr.synthetic.spec.METHODS` in its canonical order). The ``R`` models of a
group see the same data in the same order and start from the same initial weights (common random
numbers: the methods differ only in their loss). No autograd graph is built: the gradients are
closed forms (:mod:`ihmr.synthetic.losses`, :mod:`.models`), computed in one of two ways:

- compiled (the default where numba is installed, float32, labels of dimension 1 or 2): whole
  chunks of epochs run inside :mod:`.compiled`, each model on its own from the first to the
  last step, in parallel;
- torch (any dtype and dimension; the reference the compiled path is tested against): every step
  is a handful of batched tensor operations (:mod:`.steps`).

Per model the step is exactly the protocol's single-model step (tested against a plain
``torch.optim`` loop): SGD with momentum or Adam (torch semantics) on the regressor with a cosine
learning rate (``CosineAnnealingLR``, stepped per epoch), and the noise scale ``sigma`` (``v =
sigma^2``) in its own parameter group with a constant learning rate, learnable for the ``gai`` and
``bmc`` methods, fixed for ``gai_true`` and ``bmc_true``. After every epoch the validation MSE of
every model is computed and the best parameters so far are kept (model selection).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import torch

from .compiled import train_chunk
from .models import ModelSpec, predict
from .spec import METHODS, Protocol
from .steps import TorchStep, compiled_inputs, use_compiled


@dataclasses.dataclass
class TrainSet:
    """The data of ``G`` groups (float64 numpy): x_* (G, n, d_in), y_* (G, n, d),
    ``inv_density`` (G, n_train) = 1 / p_train(y_train), ``init`` (G, n_params) initial weights,
    ``shuffle_keys`` one seed (int or list of ints) per group, ``priors`` one GMM per group
    (needed by the GAI methods)."""

    x_train: np.ndarray
    y_train: np.ndarray
    inv_density: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    init: np.ndarray
    shuffle_keys: Sequence
    priors: Sequence | None = None


@dataclasses.dataclass
class TrainResult:
    """Per model ``(G, R)`` arrays: selected epoch (1-based), its validation MSE, test MSE of the
    selected and of the last model, sigma of the selected and of the last model, and the selected
    parameters (G, R, n_params)."""

    methods: tuple
    best_epoch: np.ndarray
    best_val_mse: np.ndarray
    test_mse: np.ndarray
    last_test_mse: np.ndarray
    sigma: np.ndarray
    last_sigma: np.ndarray
    params: np.ndarray
    val_history: np.ndarray | None = None
    """(epochs, G, R) validation MSE after every epoch, when requested."""


def _per_model(sigma) -> np.ndarray:
    s = np.asarray(sigma, dtype=np.float64)
    return s.reshape(-1, 1) if s.ndim == 1 else s


def cosine_lrs(base_lr: float, epochs: int) -> np.ndarray:
    """Learning rate of every epoch under ``CosineAnnealingLR(T_max=epochs, eta_min=0)``."""
    e = np.arange(epochs, dtype=np.float64)
    return base_lr * 0.5 * (1.0 + np.cos(math.pi * e / epochs))


def _blocks(methods: Sequence[str]):
    order = [m for m in METHODS if m in methods]
    if list(methods) != order:
        raise ValueError(f"methods must be in the canonical order {order}, got {list(methods)}")

    def span(names):
        idx = [i for i, m in enumerate(order) if m in names]
        return (idx[0], idx[-1] + 1) if idx else None

    return {
        "reweight": order.index("reweight") if "reweight" in order else None,
        "gai": span(("gai_true", "gai")),
        "bmc": span(("bmc_true", "bmc")),
        "learnable": np.array([m in ("gai", "bmc") for m in order]),
    }


def _val_stats(x: torch.Tensor, y: torch.Tensor):
    u = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1).double()
    n = x.shape[-2]
    yy = y.double()
    return (
        u.transpose(-1, -2) @ u / n,
        (yy.transpose(-1, -2) @ u) / n,
        (yy * yy).sum((-1, -2)) / n,
    )


def _linear_val_mse(theta_net: torch.Tensor, spec: ModelSpec, stats) -> torch.Tensor:
    """Closed-form validation MSE of linear models: mean over samples and label dimensions of
    ``||A u - y||^2`` from the moment matrices of ``u = [x, 1]`` and ``y``."""
    suu, syu, syy = stats  # (G, q, q), (G, d, q), (G,)
    A = theta_net.double().reshape(*theta_net.shape[:2], spec.d_out, spec.d_in + 1)
    t1 = (torch.matmul(A, suu.unsqueeze(1)) * A).sum((-1, -2))
    t2 = (A * syu.unsqueeze(1)).sum((-1, -2))
    return (t1 - 2.0 * t2 + syy.unsqueeze(1)) / spec.d_out


def _mse(spec: ModelSpec, theta_net: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    P = predict(spec, theta_net, x)
    return ((P - y.unsqueeze(1)) ** 2).mean((-1, -2))


@dataclasses.dataclass
class _Models:
    """The state of every model, ``(G, R, ...)`` tensors: parameters (the regressor's in the
    layout of :mod:`.models`, then sigma), optimiser moments, and the model selection so far.
    The compiled path updates them in place through ``.numpy()`` views."""

    theta: torch.Tensor
    state1: torch.Tensor
    """Momentum buffer (SGD) or first moment (Adam)."""
    state2: torch.Tensor
    """Second moment (Adam)."""
    best_theta: torch.Tensor
    best_val: torch.Tensor
    best_epoch: torch.Tensor

    @classmethod
    def start(
        cls,
        spec: ModelSpec,
        data: TrainSet,
        learnable: np.ndarray,
        sigma_true: float | np.ndarray,
        sigma_init: float,
        dtype: torch.dtype,
    ) -> "_Models":
        """Initial weights of every group, sigma at ``sigma_init`` where it is learnable and at
        ``sigma_true`` elsewhere, zero moments, nothing selected yet."""
        G, R, npar = data.x_train.shape[0], len(learnable), spec.n_params
        theta = torch.empty(G, R, npar + 1, dtype=dtype)
        theta[..., :npar] = torch.as_tensor(data.init, dtype=dtype).unsqueeze(1)
        theta[..., npar] = torch.as_tensor(
            np.where(learnable[None, :], sigma_init, _per_model(sigma_true)), dtype=dtype
        )
        return cls(
            theta=theta,
            state1=torch.zeros_like(theta),
            state2=torch.zeros_like(theta),
            best_theta=theta.clone(),
            best_val=torch.full((G, R), math.inf, dtype=torch.float64),
            best_epoch=torch.zeros(G, R, dtype=torch.long),
        )


@dataclasses.dataclass
class _Run:
    """What both training paths share besides the models: the data as arrays, the schedule,
    when to select and what to report."""

    spec: ModelSpec
    protocol: Protocol
    blocks: dict
    data: TrainSet
    n_epochs: int
    chunk_epochs: int
    select_from: int
    progress: Callable[[int], None] | None
    history: np.ndarray | None
    dtype: torch.dtype

    def __post_init__(self) -> None:
        G, n_train = self.data.x_train.shape[:2]
        self.u_train = np.concatenate([self.data.x_train, np.ones((G, n_train, 1))], axis=-1)
        self.inv_density = np.asarray(self.data.inv_density, dtype=np.float64)
        self.rngs = [np.random.default_rng(k) for k in self.data.shuffle_keys]
        self.lrs = cosine_lrs(self.protocol.lr, self.n_epochs)
        bs = self.protocol.batch_size
        self.batches = [(s, min(s + bs, n_train)) for s in range(0, n_train, bs)]
        self.x_val = torch.as_tensor(self.data.x_val, dtype=self.dtype)
        self.y_val = torch.as_tensor(self.data.y_val, dtype=self.dtype)
        self.val_stats = _val_stats(self.x_val, self.y_val) if self.spec.kind == "linear" else None

    def epoch_done(self, epoch: int) -> None:
        if self.progress is not None:
            self.progress(epoch)


def train_batched(
    spec: ModelSpec,
    protocol: Protocol,
    methods: Sequence[str],
    data: TrainSet,
    *,
    sigma_true: float | np.ndarray = 1.0,
    sigma_init: float = 1.5,
    epochs: int | None = None,
    dtype: torch.dtype = torch.float32,
    chunk_epochs: int = 200,
    progress: Callable[[int], None] | None = None,
    select_from: int = 1,
    keep_history: bool = False,
    backend: str = "auto",
) -> TrainResult:
    """Train ``G x R`` models (``R = len(methods)``) following ``protocol``.

    Args:
        spec: the regressor architecture.
        protocol: optimiser, learning rates, epochs, batch size.
        methods: subset of METHODS, in canonical order.
        data: the G groups' data, initial weights and shuffle seeds.
        sigma_true: fixed sigma of gai_true/bmc_true: one value, one per group (G,) or one per
            model (G, R);
            sigma_init: start of the learnable sigma.
        epochs: override ``protocol.epochs`` (tests); the cosine period follows it.
        dtype: compute dtype (float32 by default; float64 for exactness tests).
        chunk_epochs: epochs whose shuffled batches are gathered at once.
        progress: called with the number of epochs done, after every epoch.
        select_from: first epoch (1-based) that model selection may pick; the validation MSE is
            computed after every epoch from then on.
        keep_history: also return the validation MSE of every epoch.
        backend: how the loss gradients are computed: "compiled" (:mod:`.kernels`, float32,
            labels of dimension 1 or 2), "torch" (:mod:`.losses`, any dtype and dimension) or
            "auto" (compiled where it applies and numba is installed).
    """
    blocks = _blocks(methods)
    n_epochs = int(epochs or protocol.epochs)
    G = data.x_train.shape[0]
    models = _Models.start(spec, data, blocks["learnable"], sigma_true, sigma_init, dtype)
    if blocks["gai"] is not None and data.priors is None:
        raise ValueError("the GAI methods need one prior per group (TrainSet.priors)")
    compiled = use_compiled(backend, dtype, data.y_train.shape[-1])
    history = np.zeros((n_epochs, G, len(methods))) if keep_history else None
    run = _Run(
        spec, protocol, blocks, data, n_epochs, chunk_epochs, select_from, progress, history, dtype
    )
    if compiled:
        _train_compiled(run, models, methods)
    else:
        _train_torch(run, models)
    return _result(spec, methods, models, data, history)


def _train_compiled(run: _Run, models: _Models, methods: Sequence[str]) -> None:
    """All epochs in chunks of :func:`.compiled.train_chunk` (whole chunks in compiled code)."""
    data, G, R = run.data, *models.best_val.shape
    n_train, d = data.x_train.shape[1], data.y_train.shape[-1]
    codes, n_comp, prior = compiled_inputs(
        methods, data.priors if run.blocks["gai"] is not None else None, G, d
    )
    arrays = dict(
        u_train=run.u_train.astype(np.float32),
        y_train=np.ascontiguousarray(data.y_train, dtype=np.float32),
        inv_density=run.inv_density.astype(np.float32),
    )
    if run.val_stats is not None:
        validation = tuple(np.ascontiguousarray(x.numpy()) for x in run.val_stats)
    else:
        validation = (
            np.concatenate([data.x_val, np.ones(data.x_val.shape[:2] + (1,))], axis=-1).astype(
                np.float32
            ),
            np.ascontiguousarray(data.y_val, dtype=np.float32),
        )
    protocol, spec = run.protocol, run.spec
    epoch = 0
    while epoch < run.n_epochs:
        n_chunk = min(run.chunk_epochs, run.n_epochs - epoch)
        hist = np.zeros((n_chunk if run.history is not None else 0, G, R))
        train_chunk(
            models.theta.numpy(),
            models.state1.numpy(),
            models.state2.numpy(),
            models.best_theta.numpy(),
            models.best_val.numpy(),
            models.best_epoch.numpy(),
            hist,
            **arrays,
            perm=_permutations(run.rngs, n_chunk, n_train),
            lrs=run.lrs[epoch : epoch + n_chunk],
            first_epoch=epoch,
            first_step=epoch * len(run.batches),
            codes=codes,
            learnable=run.blocks["learnable"],
            n_comp=n_comp,
            prior=prior,
            validation=validation,
            select_from=run.select_from,
            optimizer=protocol.optimizer,
            momentum=protocol.momentum,
            sigma_lr=protocol.sigma_lr,
            batch_size=protocol.batch_size,
            hidden=spec.hidden if spec.kind == "mlp" else 0,
        )
        if run.history is not None:
            run.history[epoch : epoch + n_chunk] = hist
        for _ in range(n_chunk):
            epoch += 1
            run.epoch_done(epoch)


def _train_torch(run: _Run, models: _Models) -> None:
    """All epochs as batched torch operations (:mod:`.steps`), one step at a time."""
    spec, protocol, data, tt = run.spec, run.protocol, run.data, dict(dtype=run.dtype)
    G, n_train = data.x_train.shape[:2]
    npar = spec.n_params
    step = TorchStep(run.blocks, data.priors, run.dtype)
    learn_mask = torch.as_tensor(run.blocks["learnable"], **tt)
    grad = torch.zeros_like(models.theta)
    lr_vec = torch.full((npar + 1,), 0.0, **tt)
    garange = np.arange(G)[None, :, None]
    epoch = n_steps = 0
    while epoch < run.n_epochs:
        n_chunk = min(run.chunk_epochs, run.n_epochs - epoch)
        perm = _permutations(run.rngs, n_chunk, n_train)  # (E, G, N)
        U = torch.as_tensor(run.u_train[garange, perm], **tt)
        Yc = torch.as_tensor(data.y_train[garange, perm], **tt)
        Wc = torch.as_tensor(run.inv_density[garange, perm], **tt)
        for ec in range(n_chunk):
            lr_vec[:npar] = run.lrs[epoch]
            lr_vec[npar] = protocol.sigma_lr
            for s, t in run.batches:
                step(
                    spec,
                    models.theta,
                    U[ec, :, s:t],
                    Yc[ec, :, s:t],
                    Wc[ec, :, s:t],
                    learn_mask,
                    grad,
                )
                n_steps += 1
                _optimizer_step(
                    protocol,
                    models.theta,
                    grad,
                    models.state1,
                    models.state2,
                    lr_vec,
                    n_steps,
                    (0.9, 0.999, 1e-8),
                )
            epoch += 1
            _validate_and_select(run, models, epoch)
            run.epoch_done(epoch)


def _validate_and_select(run: _Run, models: _Models, epoch: int) -> None:
    """After ``epoch`` (1-based): the validation MSE of every model where selection or the
    history needs it, and the best parameters so far."""
    if epoch < run.select_from and run.history is None:
        return
    theta_net = models.theta[..., : run.spec.n_params]
    if run.val_stats is not None:
        val = _linear_val_mse(theta_net, run.spec, run.val_stats)
    else:
        val = _mse(run.spec, theta_net, run.x_val, run.y_val).double()
    if run.history is not None:
        run.history[epoch - 1] = val.numpy()
    if epoch >= run.select_from:
        better = val < models.best_val
        models.best_val = torch.where(better, val, models.best_val)
        models.best_theta = torch.where(better.unsqueeze(-1), models.theta, models.best_theta)
        models.best_epoch = torch.where(better, epoch, models.best_epoch)


def _result(
    spec: ModelSpec,
    methods: Sequence[str],
    models: _Models,
    data: TrainSet,
    history: np.ndarray | None,
) -> TrainResult:
    """Test MSE (float64) of the selected and of the last models, and their sigmas."""
    npar = spec.n_params
    x_test = torch.as_tensor(data.x_test, dtype=torch.float64)
    y_test = torch.as_tensor(data.y_test, dtype=torch.float64)
    best, last = models.best_theta, models.theta
    return TrainResult(
        methods=tuple(methods),
        best_epoch=models.best_epoch.numpy(),
        best_val_mse=models.best_val.numpy(),
        test_mse=_mse(spec, best[..., :npar].double(), x_test, y_test).numpy(),
        last_test_mse=_mse(spec, last[..., :npar].double(), x_test, y_test).numpy(),
        sigma=best[..., npar].double().numpy(),
        last_sigma=last[..., npar].double().numpy(),
        params=best[..., :npar].double().numpy(),
        val_history=history,
    )


def _permutations(rngs, n_epochs: int, n: int) -> np.ndarray:
    """(n_epochs, G, n) sample orders, one shuffle stream per group."""
    base = np.tile(np.arange(n), (n_epochs, 1))
    return np.stack([rng.permuted(base, axis=1) for rng in rngs], axis=1)


def _optimizer_step(protocol, theta, grad, m1, m2, lr_vec, t, betas) -> None:
    """One SGD-momentum or Adam step ``t`` (1-based; torch semantics, no weight decay) with
    per-column learning rates ``lr_vec`` (n_params + 1,)."""
    if protocol.optimizer == "sgd":
        m1.mul_(protocol.momentum).add_(grad)
        theta.addcmul_(m1, lr_vec, value=-1.0)
        return
    beta1, beta2, eps = betas
    m1.lerp_(grad, 1.0 - beta1)
    m2.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bc1 = 1.0 - beta1**t
    bc2_sqrt = math.sqrt(1.0 - beta2**t)
    denom = (m2.sqrt() / bc2_sqrt).add_(eps)
    theta.addcmul_(m1 / denom, lr_vec, value=-1.0 / bc1)
