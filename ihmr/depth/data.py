"""NYUD2-DIR data: CSV split files, depth decoding, resize / crop, DIR augmentation, balanced mask.

Layout (the DIR benchmark's, Yang et al. 2021), relative to a dataset ``root``::

    data/nyu2_train.csv            rgb path, depth path (no header), paths relative to root
    data/nyu2_test.csv
    data/test_balanced_mask.npy    (N_test, 228, 304) 0/1 (DIR writes uint8; bool accepted): the
                                   balanced evaluation pixels
    data/shots.json                optional {"many": [...], "medium": [...], "few": [...]} bin ids;
                                   absent = the NYUD2-DIR lists below

Conventions (YyzHarry/imbalanced-regression, ``nyud2-dir/loaddata.py`` and ``util.py``;
docs/protocols.md):
- Training depth is an 8-bit PNG, metres = v / 255 * 10; test depth is a 16-bit PNG in mm,
  metres = v / 1000.
- Images are resized so the short side is 240 px (long side ``int(240 * long / short)``), then
  centre-cropped to 304 x 228 (W x H). RGB is resized bilinearly; depth with Pillow's NEAREST
  rule (:func:`pil_nearest_resize`, source pixel ``int((i + 0.5) * src / dst)``), as DIR's
  ``Scale`` does, so every ground-truth pixel is a measured depth (640 x 480 ->
  ``depth[1::2, 1::2]``). Training targets are then resized to 152 x 114 (the network's
  output; bilinear, see docs/protocols.md for how this differs from DIR); test targets stay
  304 x 228 and the prediction is upsampled bilinearly to them.
- Depth bins of 0.1 m: ``bin = min(int(float32(d) * float32(10)), 99)`` exactly as DIR computes
  it (the float32 product matters at exact decimetres); 100 bins, 0-6 empty on NYUD2.
- The validation split (for model selection) is carved out of the *training scenes*; the
  reference selects on the test set, which we do not.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.utils.data

from ..config import resolve_path
from ..errors import ConfigError, DataError, ShapeError
from ..io import read_image

N_BINS = 100
BIN_WIDTH = 0.1  # metres
MIN_DEPTH = 0.7  # metres; pixels below are ignored by the losses (NYUD2-DIR protocol)
SHORT_SIDE = 240
CROP_WH = (304, 228)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# PCA lighting noise of AlexNet / Hu et al. (eigenvalues and eigenvectors of ImageNet RGB).
_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
_PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)


def _ranges(*spans: tuple[int, int]) -> list[int]:
    return [b for lo, hi in spans for b in range(lo, hi + 1)]


NYU_SHOTS = {
    "many": _ranges((9, 45)) + [47, 49],
    "medium": [7, 8, 46, 48] + _ranges((50, 56)) + [58, 60, 61, 63],
}
NYU_SHOTS["few"] = [
    b for b in range(7, N_BINS) if b not in NYU_SHOTS["many"] and b not in NYU_SHOTS["medium"]
]


def depth_bins(depth: np.ndarray) -> np.ndarray:
    """Bin ids of depths ``d`` in metres (any shape, d >= 0) -> int64, as DIR computes them:
    ``min(int(float32(d) * float32(10)), 99)`` (YyzHarry/imbalanced-regression,
    nyud2-dir/util.py ``Evaluator.get_bin_idx``). The product is rounded to float32 before the
    truncation, so 0.7 m (float32 0.69999999) lands in bin 7, not 6."""
    d = np.asarray(depth, dtype=np.float32)
    prod = d * np.float32(1.0 / BIN_WIDTH)  # float32 * float32 stays float32
    return np.minimum(prod.astype(np.int64), N_BINS - 1).clip(0)


def decode_depth(raw: np.ndarray, kind: str) -> np.ndarray:
    """Raw depth PNG values -> metres (float32, same shape).

    ``kind="train"``: 8-bit, m = v / 255 * 10. ``kind="test"``: 16-bit millimetres, m = v / 1000.
    """
    raw = np.asarray(raw)
    if kind == "train":
        if raw.dtype != np.uint8:
            raise DataError(
                f"training depth must be an 8-bit PNG (v/255*10 m), got dtype {raw.dtype}; "
                "did you swap the train and test CSV files?"
            )
        return raw.astype(np.float32) * np.float32(10.0 / 255.0)
    if kind == "test":
        if raw.dtype != np.uint16:
            raise DataError(
                f"test depth must be a 16-bit PNG in millimetres, got dtype {raw.dtype}; "
                "did you swap the train and test CSV files?"
            )
        return raw.astype(np.float32) / np.float32(1000.0)
    raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")


def read_depth(path: str | Path, kind: str) -> np.ndarray:
    """A depth PNG of split ``kind`` decoded to metres (:func:`decode_depth`), (H, W) float32."""
    img = read_image(path, unchanged=True, hint="check data.root")
    return decode_depth(img[..., 0] if img.ndim == 3 else img, kind)


def short_side_size(h: int, w: int, short: int = SHORT_SIDE) -> tuple[int, int]:
    """Output ``(W, H)`` with the short side ``short`` and the long side ``int(short * long /
    short_in)`` (DIR's ``Scale``: truncation, not rounding)."""
    if w < h:
        return short, int(short * h / w)
    return int(short * w / h), short


def pil_nearest_resize(img: np.ndarray, wh: Sequence[int]) -> np.ndarray:
    """Pillow's NEAREST resize of (H, W[, C]) to ``wh = (W', H')``, without Pillow.

    Output pixel ``(i, j)`` takes source row ``int((i + 0.5) * H / H')`` and column
    ``int((j + 0.5) * W / W')``; for 640 x 480 -> 320 x 240 that is ``img[1::2, 1::2]`` (OpenCV's
    INTER_NEAREST takes ``img[0::2, 0::2]`` instead). No value is interpolated.
    """
    w_out, h_out = int(wh[0]), int(wh[1])
    h, w = img.shape[:2]
    rows = np.minimum(((np.arange(h_out) + 0.5) * (h / h_out)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(w_out) + 0.5) * (w / w_out)).astype(np.int64), w - 1)
    return np.ascontiguousarray(img[rows][:, cols])


def resize_short_side(
    img: np.ndarray, short: int = SHORT_SIDE, nearest: bool = False
) -> np.ndarray:
    """Resize (H, W[, C]) so that min(H, W) == ``short``, keeping the aspect ratio.

    Bilinear (OpenCV) for images; ``nearest=True`` (depth maps) uses :func:`pil_nearest_resize`,
    the rule of DIR's ``Scale(240)`` for depth."""
    h, w = img.shape[:2]
    size = short_side_size(h, w, short)
    if (w, h) == size:
        return img
    if nearest:
        return pil_nearest_resize(img, size)
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def center_crop(img: np.ndarray, wh: Sequence[int] = CROP_WH) -> np.ndarray:
    """Centre crop (H, W[, C]) to ``wh = (W, H)``; raise if the image is smaller."""
    w, h = wh
    H, W = img.shape[:2]
    if H < h or W < w:
        raise ShapeError(f"cannot crop {W}x{H} image to {w}x{h}; resize it first")
    top, left = (H - h) // 2, (W - w) // 2
    return img[top : top + h, left : left + w]


def resize(img: np.ndarray, wh: Sequence[int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == tuple(wh):
        return img
    return cv2.resize(img, tuple(int(v) for v in wh), interpolation=cv2.INTER_LINEAR)


def augment(rgb: np.ndarray, depth: np.ndarray, rng: np.random.Generator):
    """DIR / Hu et al. training augmentation before cropping: flip (p 0.5) and rotation (+-5 deg).

    Depth is rotated with nearest-neighbour interpolation so no mixed depths appear at edges.
    """
    if rng.random() < 0.5:
        rgb, depth = rgb[:, ::-1], depth[:, ::-1]
    angle = rng.uniform(-5.0, 5.0)
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rgb = cv2.warpAffine(
        np.ascontiguousarray(rgb), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    depth = cv2.warpAffine(
        np.ascontiguousarray(depth),
        m,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_REFLECT,
    )
    return rgb, depth


def photometric(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PCA lighting (std 0.1) and colour jitter (brightness, contrast, saturation 0.4, random order)
    on an (H, W, 3) float image in [0, 1]."""
    alpha = rng.normal(0.0, 0.1, 3).astype(np.float32)
    x = x + (_PCA_EIGVEC @ (alpha * _PCA_EIGVAL))[None, None, :]
    gray = lambda im: (im @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]  # noqa: E731
    ops = [
        lambda im, a: im * a,
        lambda im, a: im * a + (1 - a) * gray(im).mean(),
        lambda im, a: im * a + (1 - a) * gray(im),
    ]
    for i in rng.permutation(3):
        x = ops[i](x, np.float32(1 + rng.uniform(-0.4, 0.4)))
    return np.clip(x, 0.0, 1.0)


def normalise(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or [0, 1] float -> (3, H, W) float32 ImageNet-normalised."""
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return np.ascontiguousarray(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


@dataclass
class Split:
    """Resolved file lists of one split; ``depth_kind`` says how to decode the depth PNGs."""

    rgb: list[Path]
    depth: list[Path]
    depth_kind: str


def read_split_csv(
    csv_path: str | Path, root: str | Path, depth_kind: str, check_files: bool = True
) -> Split:
    """Read a NYUD2-DIR CSV (rgb path, depth path; no header), paths relative to ``root``."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(
            f"split file {str(csv_path)!r} not found; expected the NYUD2-DIR layout "
            "(root/data/nyu2_train.csv, nyu2_test.csv) or run `ihmr depth demo-data`"
        )
    rgb, depth = [], []
    with open(csv_path, newline="") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 2:
                raise DataError(
                    f"{csv_path}:{i}: expected 2 columns (rgb path, depth path), "
                    f"got {len(row)}: {row!r}"
                )
            rgb.append(resolve_path(row[0].strip(), root))
            depth.append(resolve_path(row[1].strip(), root))
    if not rgb:
        raise DataError(f"split file {str(csv_path)!r} lists no images")
    if check_files:
        missing = [str(p) for p in rgb + depth if not p.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} file(s) listed in {csv_path} are missing, first: "
                f"{missing[0]!r}; check the dataset root ({str(root)!r})"
            )
    return Split(rgb, depth, depth_kind)


def scene_of(path: Path) -> str:
    """Scene name of a NYUD2 image: its folder, e.g. ``living_room_0038_out``."""
    return Path(path).parent.name


def carve_validation(
    split: Split, fraction: float = 0.05, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Split training indices by *scene*: (train_idx, val_idx), no scene in both.

    A seeded permutation of the sorted scene names takes ``ceil(fraction * n_scenes)`` scenes
    (at least 1, at most all but one) for validation.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    scenes = np.array([scene_of(p) for p in split.rgb])
    names = sorted(set(scenes.tolist()))
    if len(names) < 2:
        raise DataError(f"need at least 2 training scenes to carve a validation split, got {names}")
    n_val = min(len(names) - 1, max(1, math.ceil(fraction * len(names))))
    perm = np.random.default_rng(seed).permutation(len(names))
    val_scenes = {names[i] for i in perm[:n_val]}
    is_val = np.array([s in val_scenes for s in scenes])
    return np.flatnonzero(~is_val).tolist(), np.flatnonzero(is_val).tolist()


def load_mask(path: str | Path, n_images: int) -> np.ndarray:
    """The balanced test mask (N, 228, 304) as bool, checked against the test CSV.

    DIR publishes ``test_balanced_mask.npy`` as uint8 0/1 and its loaders cast it to bool; bool
    files and any integer dtype holding only 0 and 1 are accepted too (other values are refused:
    they are not a mask). A bool or uint8 file stays memory-mapped (uint8 0/1 is viewed as bool
    without a copy)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"balanced test mask {str(path)!r} not found (data/test_balanced_mask.npy)")
    mask = np.load(path, mmap_mode="r", allow_pickle=False)
    want = (n_images, CROP_WH[1], CROP_WH[0])
    if mask.shape != want:
        raise DataError(
            f"balanced mask must have shape {want} (one per test image, H x W), got {mask.shape}"
        )
    if mask.dtype == np.bool_:
        return mask
    if mask.dtype.kind not in "iu":
        raise DataError(
            f"balanced mask {str(path)!r} must be bool or integer 0/1 (DIR writes "
            f"uint8), got dtype {mask.dtype}"
        )
    lo, hi = int(mask.min()), int(mask.max())
    if lo < 0 or hi > 1:
        bad = sorted({int(v) for v in np.unique(mask)} - {0, 1})[:5]
        raise DataError(
            f"balanced mask {str(path)!r} must hold only 0 and 1, found {bad}; is it a mask?"
        )
    return mask.view(np.bool_) if mask.dtype == np.uint8 else np.asarray(mask) != 0


def load_shots(path: str | Path | None) -> dict[str, list[int]]:
    """Shot bin lists from ``shots.json``; ``None`` or a missing file gives the NYUD2-DIR lists."""
    if path is None or not Path(path).is_file():
        return {k: list(v) for k, v in NYU_SHOTS.items()}
    data = json.loads(Path(path).read_text())
    if set(data) != {"many", "medium", "few"}:
        raise DataError(f"{path}: expected keys many, medium, few; got {sorted(data)}")
    seen: set[int] = set()
    for k, v in data.items():
        ids = {int(b) for b in v}
        if ids & seen or any(b < 0 or b >= N_BINS for b in ids):
            raise DataError(f"{path}: shot bins must be disjoint ids in [0, {N_BINS}); bad {k!r}")
        seen |= ids
    return {k: [int(b) for b in data[k]] for k in ("many", "medium", "few")}


def shots_from_counts(
    counts: np.ndarray, many_share: float = 0.01, few_share: float = 0.001
) -> dict[str, list[int]]:
    """Shot lists from per-bin training pixel counts (N_BINS,): many if its share of pixels is
    above ``many_share``, few if below ``few_share`` (empty bins excluded), medium otherwise."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (N_BINS,):
        raise ShapeError(f"counts must have shape ({N_BINS},), got {counts.shape}")
    share = counts / max(counts.sum(), 1.0)
    nz = counts > 0
    many = np.flatnonzero(nz & (share > many_share))
    few = np.flatnonzero(nz & (share < few_share))
    medium = np.flatnonzero(nz & (share <= many_share) & (share >= few_share))
    return {"many": many.tolist(), "medium": medium.tolist(), "few": few.tolist()}


@dataclass
class Layout:
    """Where the NYUD2-DIR files are, relative to ``root`` (``data.root``; the config path rule of
    :mod:`ihmr.config`)."""

    root: str
    train_csv: str = "data/nyu2_train.csv"
    test_csv: str = "data/nyu2_test.csv"
    test_mask: str = "data/test_balanced_mask.npy"
    shots: str = "data/shots.json"

    def path(self, rel: str) -> Path:
        return resolve_path(rel, self.root)


def _torch_dataset_base():
    return torch.utils.data.Dataset


class NYUD2DIR(_torch_dataset_base()):
    """NYUD2-DIR images as tensors.

    Items are dicts: ``image`` (3, h, w) float32 ImageNet-normalised, ``depth`` (1, H', W') metres,
    ``mask`` (H', W') bool (test: the balanced mask; val: depth >= 0.7 m; train: depth >= 0.7 m),
    ``index``. Train targets are (114, 152) at the default input (the output resolution); val and
    test targets are the full 228 x 304 crop.

    Args:
        layout: file locations.
        split: ``train`` / ``val`` (carved from the training scenes) / ``test``.
        augment: the DIR training augmentation (train only).
        input_wh: network input size (W, H); the 304 x 228 crop is resized to it (the CPU demo
            uses a smaller input; the training target is always half the input size).
        val_fraction, seed: the scene-level validation split.
    """

    def __init__(
        self,
        layout: Layout,
        split: str,
        augment: bool = True,
        input_wh: Sequence[int] = CROP_WH,
        val_fraction: float = 0.05,
        seed: int = 0,
        check_files: bool = True,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {split!r}")
        if len(input_wh) != 2 or min(input_wh) < 16 or any(int(v) % 2 for v in input_wh):
            raise ConfigError(f"input_wh must be two even sizes >= 16 (W, H), got {input_wh}")
        self.split, self.input_wh = split, (int(input_wh[0]), int(input_wh[1]))
        self.augment = augment and split == "train"
        self.target_wh = (self.input_wh[0] // 2, self.input_wh[1] // 2)
        self.mask = None
        if split == "test":
            self.files = read_split_csv(
                layout.path(layout.test_csv), layout.root, "test", check_files
            )
            self.index = list(range(len(self.files.rgb)))
            self.mask = load_mask(layout.path(layout.test_mask), len(self.index))
        else:
            self.files = read_split_csv(
                layout.path(layout.train_csv), layout.root, "train", check_files
            )
            tr, va = carve_validation(self.files, val_fraction, seed)
            self.index = tr if split == "train" else va
        self._epoch_seed = seed

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation (deterministic given seed, epoch and item)."""
        self._epoch_seed = epoch

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``i``: (rgb (228, 304, 3) uint8, depth (228, 304) metres) after resize and crop."""
        j = self.index[i]
        rgb = resize_short_side(read_image(self.files.rgb[j], hint="check data.root"))
        depth = resize_short_side(
            read_depth(self.files.depth[j], self.files.depth_kind), nearest=True
        )
        if rgb.shape[:2] != depth.shape[:2]:
            raise DataError(
                f"image and depth sizes differ for {self.files.rgb[j]}: "
                f"{rgb.shape[:2]} vs {depth.shape[:2]}"
            )
        return center_crop(rgb), center_crop(depth)

    def __getitem__(self, i: int) -> dict:
        j = self.index[i]
        rgb = resize_short_side(read_image(self.files.rgb[j], hint="check data.root"))
        depth = resize_short_side(
            read_depth(self.files.depth[j], self.files.depth_kind), nearest=True
        )
        if self.augment:
            rng = np.random.default_rng([self._epoch_seed, j])
            rgb, depth = augment(rgb, depth, rng)
        rgb, depth = center_crop(rgb), center_crop(depth)
        x = resize(rgb, self.input_wh).astype(np.float32) / 255.0
        if self.augment:
            x = photometric(x, rng)
        if self.split == "train":
            depth = resize(np.ascontiguousarray(depth), self.target_wh)
        mask = self.mask[j] if self.mask is not None else depth >= MIN_DEPTH
        return {
            "image": torch.from_numpy(normalise(x)),
            "depth": torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None],
            "mask": torch.from_numpy(np.array(mask, dtype=bool)),
            "index": j,
        }
