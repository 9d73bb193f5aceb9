"""``ihmr tune-sigma``: the sigma search for a pose, age or depth config (docs/sigma.md).

Each task trains one candidate per sigma with sigma fixed, scores it on a balanced validation set
that is never the test set, and writes the table, the curve and the chosen config:

- pose (``ihmr train`` configs): held-out training samples, bMPVPE (:mod:`.pose`);
- age (stage-2 RRT configs): the DIR validation split (images held out of training by the
  benchmark's own CSV), bMAE over integer ages (:mod:`ihmr.age.metrics`), the metric RRT already
  selects its epoch on;
- depth: the validation scenes carved from the training scenes (``data.val_fraction``), balanced
  RMSE over the 0.1 m depth bins (:mod:`ihmr.depth.metrics`).

With ``budget_epochs`` K, the shared start is one plain-MSE run of the config's schedule and every
candidate fine-tunes it for K epochs; otherwise every candidate is a full run.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..age.config import AgeConfig
from ..age.train import load_age_checkpoint, train_rrt
from ..config import load_config, read_yaml
from ..depth import data as D
from ..depth.train import DepthTrainConfig, train_depth
from ..errors import ConfigError, DataError, check_choice
from ..io import check_writable_dir
from ..pose.config import PoseTrainConfig
from ..runs import NonFiniteLossError, read_checkpoint
from .pose import tune_pose
from .report import write_outputs
from .search import check_sigmas, search_sigma
from .validation import validation_score

TASKS = ("pose", "age", "depth")
DEFAULT_GRIDS = {
    "pose": [0.02, 0.05, 0.1, 0.2, 0.5],
    "age": [1.0, 2.0, 4.0, 8.0, 16.0],
    "depth": [0.1, 0.3, 1.0, 3.0],
}


def detect_task(raw: dict) -> str:
    """The task of a config from its sections (every benchmark has ``loss.kind``): age
    (``stage`` / ``rrt``), pose (``eval``, or ``data.train`` / ``data.samples_per_epoch``), depth
    (``model`` with ``data.input_wh`` or ``data.root`` only)."""
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if "stage" in raw or "rrt" in raw:
        return "age"
    if "eval" in raw or "train" in data or "samples_per_epoch" in data:
        return "pose"
    if "input_wh" in data or "model" in raw:
        return "depth"
    raise ConfigError(
        "cannot tell the task of this config (no stage or rrt section for age, no "
        "eval section or data.train for pose, no model or data.input_wh for "
        "depth); pass --task pose|age|depth"
    )


def tune(
    config: Path,
    *,
    task: str = "auto",
    grid: list[float] | None = None,
    budget_epochs: int | None = None,
    refine: int = 0,
    out: Path | None = None,
    sets: list[str] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load ``config`` (with ``--set`` overrides), run the search, write ``out``; the result."""
    if task == "auto":
        task = detect_task(read_yaml(config))
    check_choice(task, TASKS, "task")
    grid = check_sigmas(grid if grid is not None else DEFAULT_GRIDS[task])
    if budget_epochs is not None and budget_epochs < 1:
        raise ConfigError(f"--budget-epochs must be >= 1, got {budget_epochs}")
    if refine < 0:
        raise ConfigError(f"--refine must be >= 0, got {refine}")
    if task == "pose":
        cfg = load_config(PoseTrainConfig, config, list(sets))
        out = out or Path(f"{cfg.out}_tune_sigma")
        return {
            "task": task,
            "out": out,
            **tune_pose(cfg, out, grid, budget_epochs, log=log, refine=refine),
        }
    if task == "age":
        cfg = load_config(AgeConfig, config, list(sets))
        out = out or Path(f"{cfg.out}_tune_sigma")
        return {"task": task, "out": out, **_tune_age(cfg, out, grid, budget_epochs, log, refine)}

    cfg = load_config(DepthTrainConfig, config, list(sets))
    out = out or Path(f"{cfg.out}_tune_sigma")
    return {"task": task, "out": out, **_tune_depth(cfg, out, grid, budget_epochs, log, refine)}


def _finish(
    out: Path, search, metric: str, chosen: Any, title: str, learned, info, mse: float | None = None
) -> dict:
    return {
        "search": search,
        "learned": learned,
        "files": write_outputs(out, search, metric, chosen, title, learned, info, mse),
    }


def _search(score, grid, budget_epochs, warm, refine: int = 0):
    return search_sigma(score, grid, refine=refine, warm_start=warm if budget_epochs else None)


def _tune_with(
    task: str,
    train_one: Callable[[Any, dict | None], tuple[float, dict, float]],
    cfg: Any,
    out: Path,
    grid: list[float],
    budget_epochs: int | None,
    log: Callable[[str], None],
    refine: int,
    metric: str,
    title: str,
) -> dict:
    """The search of the age and depth tasks: ``train_one(config, start)`` trains one candidate
    (``start``: the shared MSE start's weights, or None) and returns ``(validation score, weights
    to start from, sigma at the end)``."""
    out = check_writable_dir(out)
    epochs = cfg.optim.epochs

    def run(name: str, kind: str, sigma: float, learn: bool, n: int, init: dict | None):
        c = copy.deepcopy(cfg)
        c.out = str(out / "runs" / name)
        c.loss.kind, c.loss.init_noise_sigma, c.loss.learn_noise = kind, sigma, learn
        c.optim.epochs = n
        shutil.rmtree(c.out, ignore_errors=True)  # our own scratch folder under out/runs
        return train_one(c, init)

    ref: dict[str, float] = {}

    def warm():
        log(f"shared start: MSE, {epochs} epochs")
        ref["mse"], start, _ = run(
            "mse_start", "mse", cfg.loss.init_noise_sigma, False, epochs, None
        )
        return start

    def score(sigma: float, start: dict | None = None):
        log(f"sigma {sigma:g}: {budget_epochs or epochs} epochs")
        try:
            n = budget_epochs or epochs
            return run(f"sigma_{sigma:g}", cfg.loss.kind, sigma, False, n, start)[0]
        except NonFiniteLossError:
            return math.inf

    search = _search(score, grid, budget_epochs, warm, refine)
    learned = None
    if cfg.loss.learn_noise:
        t0 = time.perf_counter()
        init = warm_state(out / "runs" / "mse_start", task) if budget_epochs else None
        n = budget_epochs or epochs
        s, _, sigma = run("learned", cfg.loss.kind, cfg.loss.init_noise_sigma, True, n, init)
        learned = {"sigma": sigma, "score": s, "seconds": time.perf_counter() - t0}
    chosen = copy.deepcopy(cfg)
    chosen.loss.init_noise_sigma, chosen.loss.learn_noise = search.sigma, False
    chosen.out = f"{cfg.out}_sigma{search.sigma:g}"
    info = {"task": task, "budget_epochs": budget_epochs, "full_epochs": epochs}
    return _finish(out, search, metric, chosen, title, learned, info, ref.get("mse"))


# ------------------------------------------------------------------------------------------------
# age: stage-2 RRT on the frozen stage-1 backbone


def _tune_age(
    cfg: Any,
    out: Path,
    grid: list[float],
    budget_epochs: int | None,
    log: Callable[[str], None],
    refine: int = 0,
) -> dict:
    if cfg.stage != "rrt" or cfg.loss.kind not in ("bmc", "gai", "bni"):
        raise ConfigError(
            f"tune-sigma needs a stage-2 config with a Balanced MSE loss (loss.kind "
            f"bmc, gai or bni), got stage {cfg.stage!r} with loss.kind "
            f"{cfg.loss.kind!r} (e.g. configs/age/demo_bmc.yaml)"
        )

    def train_one(c: Any, init: dict | None) -> tuple[float, dict, float]:
        c.progress, c.tensorboard = False, False
        _, best = load_age_checkpoint(train_rrt(c, log=lambda m: None, init_linear=init).checkpoint)
        res = best["val"]["overall"]
        score = validation_score({"bins": res["n_ages"], "bmae": res["bmae"]})
        return score, _linear_state(best), _sigma_of(best.get("criterion") or {})

    title = f"age {cfg.loss.kind}: sigma on the validation split"
    return _tune_with(
        "age", train_one, cfg, out, grid, budget_epochs, log, refine, "bMAE (years)", title
    )


# ------------------------------------------------------------------------------------------------
# depth


def _tune_depth(
    cfg: Any,
    out: Path,
    grid: list[float],
    budget_epochs: int | None,
    log: Callable[[str], None],
    refine: int = 0,
) -> dict:
    if cfg.loss.kind not in ("bni", "gai", "bmc"):
        raise ConfigError(
            f"loss.kind is {cfg.loss.kind!r}, which has no sigma; tune a bni, gai "
            "or bmc config (e.g. configs/depth/demo.yaml --set loss.kind=bni)"
        )
    bins = _depth_validation_bins(cfg)
    if bins < 2:
        raise DataError(
            f"the depth validation scenes (data.val_fraction "
            f"{cfg.data.val_fraction:g}) cover {bins} non-empty 0.1 m depth bin(s); "
            "a balanced score needs at least 2: raise data.val_fraction or add scenes"
        )

    def train_one(c: Any, init: dict | None) -> tuple[float, dict, float]:
        res = train_depth(c, init_model=init)
        value = float(res.best["value"])
        if math.isnan(value):
            raise ConfigError(
                f"validation bRMSE of {c.out!r} is NaN: the validation scenes "
                "hold no valid pixels; raise data.val_fraction"
            )
        state = read_checkpoint(res.checkpoint)["state"]
        return value, state["model"], _sigma_of(state["loss"])

    title = f"depth {cfg.loss.kind}: sigma on held-out training scenes"
    return _tune_with(
        "depth", train_one, cfg, out, grid, budget_epochs, log, refine, "bRMSE (m)", title
    )


def _depth_validation_bins(cfg: Any) -> int:
    """Non-empty 0.1 m depth bins over the valid pixels of the validation scenes the run will
    carve from the training scenes (the same split :func:`ihmr.depth.train.train_depth` uses)."""
    kw = dict(input_wh=cfg.data.input_wh, val_fraction=cfg.data.val_fraction, seed=cfg.seed)
    val = D.NYUD2DIR(D.Layout(cfg.data.root), "val", augment=False, **kw)
    seen = np.zeros(D.N_BINS, bool)
    for i in range(len(val)):
        item = val[i]
        d = item["depth"].numpy()[0][item["mask"].numpy().astype(bool)]
        seen[D.depth_bins(d[d >= cfg.loss.min_depth])] = True
    return int(seen.sum())


def warm_state(run_dir: Path, task: str) -> dict:
    """The selected weights of a shared-start run: age ``linear`` or depth model state dict."""
    if task == "age":
        return _linear_state(load_age_checkpoint(run_dir / "best.pt")[1])
    return read_checkpoint(run_dir / "best.pt")["state"]["model"]


def _linear_state(best: dict) -> dict:
    """The ``linear`` head's state dict out of an age ``best.pt`` payload."""
    return {k[len("linear.") :]: v for k, v in best["model"].items() if k.startswith("linear.")}


def _sigma_of(criterion_state: dict) -> float:
    for k, v in criterion_state.items():
        if k.endswith("noise_sigma"):
            return float(v.reshape(-1)[0])
    return float("nan")
