"""IMDB-WIKI-DIR / AgeDB-DIR readers: the ``age,path,split`` CSV, image checks, DIR transforms.

The DIR split files (Yang et al. 2021) are CSVs with a header and the columns ``age`` (years),
``path`` (relative to the dataset's image root) and ``split`` (``train`` / ``val`` / ``test``).
Use the shipped files: regenerating them depends on file order.

Transforms (DIR ``datasets.py``, re-written with OpenCV): images are read as RGB and resized to
``size x size``; training adds ``RandomCrop(size, padding=16)`` (zero padding) and a horizontal
flip with probability 1/2; finally ``(x / 255 - 0.5) / 0.5`` and CHW float32. The random crop and
flip of a sample depend only on ``(seed, epoch, index)``, so they are identical across worker
counts and after a resume.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ..config import resolve_path
from ..errors import ConfigError, DataError
from ..io import read_image

SPLITS = ("train", "val", "test")
COLUMNS = ("age", "path", "split")
PADDING = 16


@dataclass(frozen=True)
class AgeTable:
    """The rows of a DIR CSV: ``ages`` (N,) float64 years, ``paths`` and ``splits`` (N,) str."""

    ages: np.ndarray
    paths: np.ndarray
    splits: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.ages)

    def subset(self, split: str) -> "AgeTable":
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        m = self.splits == split
        return AgeTable(self.ages[m], self.paths[m], self.splits[m], self.source)

    def counts(self) -> dict[str, int]:
        return {s: int((self.splits == s).sum()) for s in SPLITS}


def dataset_paths(csv: str | os.PathLike, root: str | os.PathLike | None) -> tuple[Path, Path]:
    """``(split CSV, image root)`` of an age config's ``data.csv`` and ``data.root``.

    The CSV and the images it lists are files of the data set, read from ``data.root`` (the
    config path rule, :func:`ihmr.config.resolve_path`); ``data.root`` is relative to the
    working directory.
    """
    if root is None or str(root) == "":
        raise ConfigError(
            "data.root is not set: give the folder of the age data set (data.csv "
            "and the image paths in it are read from there), e.g. "
            "--set data.root=data/imdb_wiki_dir"
        )
    return resolve_path(csv, root), Path(root).expanduser()


def read_age_csv(
    csv_path: str | os.PathLike,
    label_range: tuple[float, float] = (0.0, 120.0),
    require_splits: Sequence[str] = SPLITS,
) -> AgeTable:
    """Read and validate a DIR ``age,path,split`` CSV.

    Checks: the header holds the three columns (extra columns are ignored), every age is a finite
    number inside ``label_range`` (years, inclusive), every split is train/val/test, each split in
    ``require_splits`` is non-empty, and no path is empty. Errors name the row numbers.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"split file {str(csv_path)!r} does not exist; set data.csv to the "
            "DIR CSV (e.g. imdb_wiki.csv, relative to data.root) or generate "
            "the demo with `ihmr age demo-data`"
        )
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{str(csv_path)!r} must have the columns {list(COLUMNS)}, got {header}; "
                f"missing {missing}"
            )
        rows = list(reader)
    if not rows:
        raise DataError(f"{str(csv_path)!r} has a header but no rows")
    ages = np.empty(len(rows))
    bad_age, bad_split, empty_path = [], [], []
    for i, r in enumerate(rows):
        try:
            ages[i] = float(r["age"])
        except (TypeError, ValueError):
            ages[i] = np.nan
        if not np.isfinite(ages[i]) or not label_range[0] <= ages[i] <= label_range[1]:
            bad_age.append(i + 2)  # 1-based line numbers, header is line 1
        if r["split"] not in SPLITS:
            bad_split.append(i + 2)
        if not (r["path"] or "").strip():
            empty_path.append(i + 2)
    if bad_age:
        raise DataError(
            f"{len(bad_age)} row(s) of {str(csv_path)!r} have an age that is not a number in "
            f"[{label_range[0]:g}, {label_range[1]:g}] (lines {bad_age[:5]}); fix the "
            "file or widen data.label_range"
        )
    if bad_split:
        raise DataError(
            f"{len(bad_split)} row(s) of {str(csv_path)!r} have a split other than {SPLITS} "
            f"(lines {bad_split[:5]})"
        )
    if empty_path:
        raise DataError(
            f"{len(empty_path)} row(s) of {str(csv_path)!r} have an empty path "
            f"(lines {empty_path[:5]})"
        )
    table = AgeTable(
        ages,
        np.array([r["path"] for r in rows], dtype=object),
        np.array([r["split"] for r in rows]),
        str(csv_path),
    )
    empty = [s for s in require_splits if table.counts()[s] == 0]
    if empty:
        raise DataError(
            f"{str(csv_path)!r} has no rows for split(s) {empty}; counts {table.counts()}"
        )
    return table


def check_images(root: str | os.PathLike, paths: Sequence[str], show: int = 5) -> None:
    """Raise :class:`DataError` if any ``root / path`` is not a file, giving the count and the
    first ``show`` missing paths."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"image root {str(root)!r} is not a folder; set data.root to the folder the "
            "CSV paths are relative to"
        )
    missing = [p for p in paths if not (root / p).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(paths)} image(s) are missing under {str(root)!r}, "
            f"e.g. {missing[:show]}; re-download or re-extract the images, or fix data.root"
        )


def transform(
    img: np.ndarray, size: int, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """DIR transform of an (H, W, 3) uint8 RGB image -> (3, size, size) float32 in [-1, 1].

    Args:
        img: the decoded image.
        size: output side in pixels (224 for the real benchmarks).
        train: add the random crop with 16-pixel zero padding and the horizontal flip.
        rng: numpy generator for the augmentation (required when ``train``).
    """
    x = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    if train:
        if rng is None:
            raise ValueError("transform(train=True) needs an rng for the random crop and flip")
        pad = np.zeros((size + 2 * PADDING, size + 2 * PADDING, 3), dtype=x.dtype)
        pad[PADDING : PADDING + size, PADDING : PADDING + size] = x
        top, left = rng.integers(0, 2 * PADDING + 1, size=2)
        x = pad[top : top + size, left : left + size]
        if rng.random() < 0.5:
            x = x[:, ::-1]
    x = (x.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class AgeImages:
    """Map-style dataset of ``(image (3, size, size) float32 tensor, age float32 tensor)``.

    A plain class (no torch import at module import) that ``torch.utils.data.DataLoader`` accepts
    and worker processes can pickle. Call :meth:`set_epoch` before each training epoch.
    """

    def __init__(
        self, table: AgeTable, root: str | os.PathLike, size: int, train: bool, seed: int = 0
    ) -> None:
        self.table, self.root, self.size, self.train, self.seed = (
            table,
            Path(root),
            size,
            train,
            seed,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(i)]) if self.train else None
        x = transform(
            read_image(self.root / self.table.paths[i], hint="check data.root"),
            self.size,
            self.train,
            rng,
        )
        return torch.from_numpy(x), torch.tensor(self.table.ages[i], dtype=torch.float32)


def make_dataset(
    table: AgeTable,
    root: str | os.PathLike,
    size: int,
    train: bool,
    seed: int = 0,
    check: bool = True,
) -> AgeImages:
    """:class:`AgeImages` over ``table`` after checking that every image exists."""
    if check:
        check_images(root, list(table.paths))
    return AgeImages(table, root, size, train, seed)
