"""Configuration of ``ihmr train`` (retrains SPIN's HMR head on cached features) and ``ihmr demo``.

Dataclasses with one docstring per field; load them with :func:`ihmr.config.load_config`
(defaults < YAML < ``--set`` overrides, unknown keys rejected). The defaults are the released IHMR
recipe (mmhuman3d ``configs/balanced_mse``; docs/protocols.md): Adam 1e-4 constant, 20
epochs, 128 samples per GPU, gradient clipping 35, sigma in its own optimizer group (lr 1e-2),
keypoints 300 each, betas 0.06, camera prior 60, pose loss x 60 on flattened rotation matrices.
Relative paths follow the one rule of :mod:`ihmr.config`: files of the data set (``data.train``,
``eval``, ``loss.prior``) are read from ``data.root``, every other path from the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional

PoseLoss = Literal["mse", "gai", "bmc", "bmc_mmhuman3d"]
KeypointLoss = Literal["mse", "bmc"]


@dataclass
class DatasetConfig:
    """One training dataset: SPIN labels, optional static fits, and its feature store."""

    name: str = "train"
    """Dataset name (h36m, mpi_inf_3dhp, lsp, lspet, mpii, coco, or any name)."""
    labels: str = ""
    """SPIN ``dataset_extras/<name>.npz`` label file."""
    features: str = ""
    """Feature store folder made for this label file (``ihmr extract-features`` / ``demo-data``)."""
    fits: Optional[str] = None
    """SPIN static fits ``static_fits/<name>_fits.npy``: pseudo ground truth where the sample has
    no GT SMPL, valid by ``data.fit_loss_threshold``."""
    weight: float = 1.0
    """Share of this dataset in the mix (normalised over the datasets)."""


@dataclass
class DataConfig:
    """Training data: the dataset mix and its sampling."""

    train: List[DatasetConfig] = field(default_factory=list)
    """Datasets of the mix; their relative paths are read from ``root``."""
    root: str = "."
    """Folder of the data set, relative to the working directory: the relative paths of
    ``train``, ``eval`` and ``loss.prior`` are read from here (the one path rule of
    :mod:`ihmr.config`)."""
    views: bool = True
    """Sample the cached augmented views of a store when it has them (one view per draw)."""
    samples_per_epoch: int = 0
    """Samples drawn per epoch; 0 = the total size of the training sets."""
    fit_loss_threshold: float = 10.0
    """A static fit is a pose/betas label only if its 2-D fitting loss (``ihmr.pose.fits``) is
    below this, or the sample has GT SMPL (released: 10; SPIN: 100; .inf: every fit)."""
    fit_betas_limit: float = 3.0
    """Zero a fit's betas when any |beta| exceeds this (released: 3; .inf: never)."""


@dataclass
class LossConfig:
    """The released IHMR loss composition (see :mod:`ihmr.pose.losses`)."""

    kind: PoseLoss = "mse"
    """Pose loss on the flattened rotation matrices of valid fits: mse (x ``pose_weight``), gai,
    bmc (paper Eq. 3.14) or bmc_mmhuman3d (the released BMCLossMD)."""
    pose_weight: float = 60.0
    """Weight of the pose loss (the balanced losses are divided by the label dimension 216 so
    their MSE term matches the baseline's element mean)."""
    betas_weight: float = 0.06
    """Weight of the betas MSE (valid fits only; never balanced)."""
    keypoints3d_weight: float = 300.0
    """Weight of the 3-D keypoint loss (SPIN's 24 ground-truth joints, pelvis-centred)."""
    keypoints2d_weight: float = 300.0
    """Weight of the 2-D keypoint loss (projection with f = 5000 on the 224 px crop)."""
    openpose_weight: float = 0.0
    """Weight of the 25 OpenPose joints inside both keypoint losses (released: 0)."""
    keypoints: KeypointLoss = "mse"
    """Keypoint losses: mse (SPIN's, released) or bmc (balanced too: BMC on the 3-D and 2-D
    joint vectors with the joints' confidences as target weights, each term with its own sigma;
    beyond the paper)."""
    bmc_per_joint: bool = False
    """BMC per joint (``bmc_loss(groups=...)``): each joint's rotation matrix (pose: kind bmc) and
    position (keypoints: bmc) is balanced against the same joint of the batch's labels, instead
    of one softmax over the whole 216-d pose / 72-d or 98-d joint vector, whose batch estimate
    fades in that many dimensions (docs/losses.md, "BMC per block"). Beyond the paper."""
    keypoints3d_init_noise_sigma: float = 0.05
    """Initial noise scale of the balanced 3-D keypoint loss (metres, per coordinate)."""
    keypoints2d_init_noise_sigma: float = 0.05
    """Initial noise scale of the balanced 2-D keypoint loss (crop units in [-1, 1])."""
    cam_weight: float = 60.0
    """Weight of SPIN's camera prior ``exp(-10 s)^2``."""
    init_noise_sigma: float = 1.0
    """Initial noise scale sigma of the balanced pose loss (per rotation-matrix entry)."""
    learn_noise: bool = True
    """Learn the balanced losses' sigmas jointly with the head (their own optimizer group)."""
    prior: Optional[str] = None
    """GMM prior ``.npz`` (``ihmr fit-prior --pose-to-rotmat -k 16``) for pose: gai; relative
    to ``data.root``."""
    gather: bool = True
    """BMC under DDP: compare local predictions with the global batch of all ranks."""


@dataclass
class OptimConfig:
    """Optimisation (released: Adam 1e-4 constant, 20 epochs, batch 128 per GPU, clip 35)."""

    epochs: int = 20
    """Training epochs."""
    batch_size: int = 128
    """Samples per step and process (fixed; the last partial batch is dropped)."""
    lr: float = 1e-4
    """Adam learning rate of the head."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate of the head over the run: constant (released), or cosine decay from ``lr``
    to 0 over all steps (set every step; sigma's rate stays constant)."""
    sigma_lr: float = 1e-2
    """Adam learning rate of the noise scale sigma."""
    grad_clip: float = 35.0
    """Gradient norm clipping of the head (0 disables)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the head's weights, updated every step
    (warm-up ``min(ema, (1 + t) / (10 + t))`` at step t) and saved as ``head.pt`` (so evaluated)
    in place of the last weights; 0 = off (released)."""


@dataclass
class EvalConfig:
    """Test set evaluated after training (skipped when ``labels`` is empty); relative paths are
    read from ``data.root``."""

    labels: str = ""
    """SPIN test label file (e.g. 3dpw_test.npz)."""
    features: str = ""
    """Feature store of the test set."""
    split: Optional[str] = None
    """Balanced split ``.npz`` (``ihmr split``); computed when absent."""
    renders: int = 0
    """Render the K rarest test samples."""
    mpvpe_body: Literal["gendered", "neutral"] = "gendered"
    """Body of the predicted meshes for MPVPE: gendered (the IHMR release: the sample's
    ground-truth gender, like the ground truth) or neutral (SPIN's evaluation)."""


@dataclass
class PoseTrainConfig:
    """``ihmr train``: retrain SPIN's HMR head on cached features."""

    data: DataConfig = field(default_factory=DataConfig)
    """Training data."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss composition."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser and schedule."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation after training."""
    out: str = "runs/ihmr"
    """Run folder (config.yaml, metrics.jsonl/csv, last.pt, head.pt), relative to the working
    directory."""
    seed: int = 0
    """Seed of the head initialisation, dropout and sampling."""
    device: str = "auto"
    """auto (cuda:LOCAL_RANK when available, else cpu), cpu or cuda[:i]."""
    amp: Literal["auto", "off", "bf16"] = "auto"
    """bf16 autocast of the head (auto: on CUDA only); losses and body stay float32."""
    compile: Literal["off", "default", "reduce-overhead"] = "off"
    """torch.compile the step (reduce-overhead = CUDA graphs; ~30 s to compile once)."""
    resident_gib: float = 0.0
    """Keep features on the GPU when they take at most this many GiB (0 = 80% of free memory)."""
    smpl_dir: Optional[str] = None
    """SMPL files folder (default: $IHMR_SMPL_DIR, else the bundled open body)."""
    progress: bool = True
    """Show a progress bar (loss and sigma; one host sync every ``log_every`` steps)."""
    log_every: int = 50
    """Steps between progress-bar updates (the only host syncs inside an epoch)."""
    tensorboard: bool = False
    """Also log to TensorBoard when it is installed."""
