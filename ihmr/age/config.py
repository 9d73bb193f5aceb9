"""Configuration of the age benchmark (``configs/age/*.yaml``); defaults follow the DIR / Balanced
MSE recipe (YyzHarry/imbalanced-regression, agedb-dir/train.py; docs/protocols.md).
Load with ``ihmr.config.load_config(AgeConfig, path, sets)``.
Relative paths follow the one rule of :mod:`ihmr.config`: ``data.csv`` and the images it lists
are read from ``data.root``, every other path (``out``, checkpoints, cached features) from the
working directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional, Tuple

RRT_LOSSES = ("mse", "l1", "bmc", "gai", "bni", "inverse", "sqrt_inv")
STAGE1_LOSSES = ("l1", "mse")


@dataclass
class DataConfig:
    root: str = "data/age-demo"
    """Folder of the data set, relative to the working directory; ``csv`` and the image paths in
    it are read from here (the one path rule of :mod:`ihmr.config`)."""
    csv: str = "demo.csv"
    """DIR split file with the columns age,path,split, relative to ``root`` (imdb_wiki.csv,
    agedb.csv or the demo's demo.csv)."""
    img_size: int = 224
    """Network input side in pixels (224 for the benchmarks, 32 for the demo)."""
    label_range: Tuple[float, float] = (0.0, 120.0)
    """Valid ages in years (inclusive); rows outside are an error. Also the BNI bin range."""
    workers: int = 4
    """DataLoader worker processes (0 = load in the main process)."""
    check_images: bool = True
    """Check on open that every image exists (reports the count and the first missing paths)."""


@dataclass
class ModelConfig:
    backbone: Literal["resnet50", "small"] = "resnet50"
    """ResNet-50 (the benchmark) or a small CNN (CPU demo only)."""
    width: int = 16
    """Width of the small CNN (feature dimension 8 x width)."""


@dataclass
class LossConfig:
    """The loss of the run's stage. Stage 1 (vanilla) trains with l1 (DIR) or mse; stage 2 (RRT)
    with any kind."""

    kind: Literal["mse", "l1", "bmc", "gai", "bni", "inverse", "sqrt_inv"] = "l1"
    """bmc / gai / bni: Balanced MSE; inverse / sqrt_inv: MSE reweighted by p(y)^-1 / p(y)^-1/2
    (with lds: RRT+LDS); mse / l1: plain (stage 1's DIR loss is l1; in stage 2 a control)."""
    init_noise_sigma: float = 10.0
    """Initial sigma of the label noise (years); Balanced MSE losses only."""
    learn_noise: bool = True
    """Learn sigma (own optimizer group, lr ``optim.sigma_lr``); false keeps it fixed."""
    gmm_components: int = 8
    """K of the GAI prior, fitted on the training ages in the run (paper: 8 for age)."""
    lds: bool = False
    """Smooth the histogram prior of bni / inverse / sqrt_inv with LDS."""
    lds_kernel: Literal["gaussian", "triangular", "laplace"] = "gaussian"
    """LDS kernel (DIR: gaussian)."""
    lds_ks: int = 5
    """LDS kernel size in bins (odd; DIR: 5)."""
    lds_sigma: float = 2.0
    """LDS kernel width in bins (DIR: 2)."""
    reweight_clip: Optional[Tuple[float, float]] = (5.0, 1000.0)
    """Clamp of the (smoothed) bin count before inverting (DIR: 5 .. 1000)."""


@dataclass
class OptimConfig:
    """Adam on the trained parameters of the stage (stage 1: the whole network; stage 2: the
    re-initialised ``linear``), sigma in its own group at ``sigma_lr`` (never scheduled).
    Defaults: DIR's stage 1 (configs/age/vanilla.yaml adds its decay at epochs 60 and 80)."""

    lr: float = 1e-3
    """Learning rate (DIR stage 1: 1e-3; RRT: 1e-4)."""
    epochs: int = 90
    """Training epochs (DIR stage 1: 90; RRT: 10)."""
    batch_size: int = 256
    """Samples per step."""
    weight_decay: float = 0.0
    """Adam weight decay (not applied to sigma)."""
    milestones: List[int] = field(default_factory=list)
    """Epochs after which the learning rate is multiplied by ``gamma`` (DIR stage 1: [60, 80];
    empty: constant)."""
    gamma: float = 0.1
    """Factor of each learning-rate decay."""
    sigma_lr: float = 1e-2
    """Adam learning rate of sigma (Balanced MSE losses with ``loss.learn_noise``)."""


@dataclass
class RRTConfig:
    """Stage 2, regressor re-training: only a re-initialised ``linear`` (and sigma) learn."""

    pretrained: str = ""
    """Stage-1 checkpoint (the vanilla run's best.pt)."""
    features: str = ""
    """Cached features (.npz from `ihmr age extract-features`); empty: run the frozen backbone on
    the images every step (slow, but with the training augmentation)."""


@dataclass
class AgeConfig:
    stage: Literal["vanilla", "rrt"] = "vanilla"
    """vanilla: train the whole network (stage 1); rrt: re-train the regressor (stage 2)."""
    out: str = "runs/age/vanilla"
    """Run folder: config.yaml, metrics.jsonl/csv, last.pt (``--resume``), best.pt (selected
    model)."""
    seed: int = 0
    device: str = "auto"
    """"auto" (cuda:LOCAL_RANK when available, else cpu), "cpu", "cuda", "cuda:1" ..."""
    select_metric: Literal["bmae", "mae"] = "bmae"
    """Validation metric for model selection (never the test set)."""
    many: int = 100
    """Many-shot: more than this many training images per integer age."""
    few: int = 20
    """Few-shot: fewer than this many training images per integer age."""
    progress: bool = True
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    """The stage's loss and its prior."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The stage's optimisation."""
    rrt: RRTConfig = field(default_factory=RRTConfig)
    """Stage 2's inputs (ignored by stage 1)."""
