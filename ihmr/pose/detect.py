"""People in an image: who to crop, and where (the detection side of ``ihmr predict``).

Sources, tried per image in this order (the first that gives at least one person wins, and each
person records which one it was):

1. ``"boxes"``: boxes the user gives (``--boxes``), JSON or CSV, see :func:`read_boxes`. This is
   the hook for any other detector: write its boxes in one of those layouts;
2. ``"center_scale"``: SPIN-style ``center`` (N, 2) / ``scale`` (N,) per ``imgname`` in an ``.npz``
   (a SPIN dataset file), used as the crop itself;
3. an automatic detector (:mod:`ihmr.pose.detectors`): OpenCV's Haar cascades and HOG merged
   (sources ``"face"``, ``"profile_face"``, ``"upper_body"``, ``"full_body"``, ``"hog"``), HOG
   alone, or a local ONNX person detector (``"dnn"``);
4. ``"whole_image"``: one person spanning the image (SPIN's demo without a box), only with
   ``fallback="whole-image"``; otherwise an image where nobody is found gets no person.

Boxes are ``[x1, y1, x2, y2]`` in pixels (x right, y down, (0, 0) the top-left pixel's corner).
A box becomes SPIN's crop (SPIN ``demo.py``)::

    center = ((x1 + x2) / 2, (y1 + y2) / 2),   scale = rescale * max(x2 - x1, y2 - y1) / 200

with ``rescale = 1.2`` (the crop is a square of side ``200 * scale`` px around the centre). The
whole image gives ``center`` = image centre and ``scale = max(H, W) / 200``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..io import open_npz
from ..spin import CROP_BOX

SOURCES = (
    "boxes",
    "center_scale",
    "face",
    "profile_face",
    "upper_body",
    "full_body",
    "hog",
    "dnn",
    "whole_image",
)
FALLBACKS = ("none", "whole-image")
RESCALE = 1.2


@dataclass
class Person:
    """One person to crop: ``bbox`` (4,) [x1, y1, x2, y2] px, SPIN ``center`` (2,) px and
    ``scale`` (crop side / 200 px), ``confidence`` (detector score; 1 for user boxes without a
    score, NaN for the whole image), the ``source`` (one of :data:`SOURCES`) and the
    ``evidence``: the sources that agreed on this person, ``+``-joined (e.g. ``face+hog``)."""

    bbox: np.ndarray
    center: np.ndarray
    scale: float
    confidence: float
    source: str
    evidence: str = ""

    def __post_init__(self) -> None:
        self.evidence = self.evidence or self.source


def bbox_to_center_scale(
    bbox: Sequence[float], rescale: float = RESCALE
) -> tuple[np.ndarray, float]:
    """[x1, y1, x2, y2] -> (center (2,), scale): SPIN's square crop around the box."""
    b = np.asarray(bbox, dtype=np.float64)
    if b.shape != (4,):
        raise ShapeError(f"a box must be [x1, y1, x2, y2], got shape {b.shape}")
    w, h = b[2] - b[0], b[3] - b[1]
    if not (np.isfinite(b).all() and w > 0 and h > 0):
        raise DataError(
            f"box {b.tolist()} must be finite with x2 > x1 and y2 > y1 "
            "([x1, y1, x2, y2] pixels, not [x, y, w, h]?)"
        )
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]), float(rescale * max(w, h) / CROP_BOX)


def center_scale_to_bbox(center: Sequence[float], scale: float) -> np.ndarray:
    """The crop square of SPIN's ``center``/``scale`` as [x1, y1, x2, y2] (side 200 * scale)."""
    c, half = np.asarray(center, dtype=np.float64), CROP_BOX / 2 * float(scale)
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def whole_image(height: int, width: int) -> Person:
    """SPIN's demo without a box: the image centre, scale = max(H, W) / 200."""
    return Person(
        np.array([0.0, 0.0, width, height]),
        np.array([width / 2.0, height / 2.0]),
        max(height, width) / CROP_BOX,
        float("nan"),
        "whole_image",
    )


# ---------------------------------------------------------------------------------- user boxes
def _box_row(row: Mapping[str, Any], where: str) -> tuple[list[float], float]:
    keys = {k.strip().lower(): v for k, v in row.items() if k is not None}
    try:
        if all(k in keys for k in ("x1", "y1", "x2", "y2")):
            box = [float(keys[k]) for k in ("x1", "y1", "x2", "y2")]
        elif all(k in keys for k in ("x", "y", "w", "h")):
            x, y, w, h = (float(keys[k]) for k in ("x", "y", "w", "h"))
            box = [x, y, x + w, y + h]
        elif "bbox" in keys:
            box = [float(v) for v in keys["bbox"]]
        else:
            raise KeyError
        score = keys.get("score", keys.get("confidence"))
        score = 1.0 if score in (None, "") else float(score)
    except (KeyError, TypeError, ValueError):
        raise DataError(
            f"{where}: cannot read a box from {dict(row)}; give x1,y1,x2,y2 (or x,y,w,h"
            ", or 'bbox': [x1, y1, x2, y2]) and optionally score"
        ) from None
    if len(box) != 4:
        raise DataError(f"{where}: a box needs 4 numbers [x1, y1, x2, y2], got {box}")
    bbox_to_center_scale(box)  # validates
    return box, score


def read_boxes(path: str | os.PathLike) -> dict[str, list[tuple[list[float], float]]]:
    """User boxes: image name -> list of ``([x1, y1, x2, y2], score)``.

    Accepted layouts (image names as in the image folder, relative paths or bare file names):

    - JSON object ``{"a.jpg": [[x1, y1, x2, y2], ...]}`` or ``{"a.jpg": [{"bbox": [...],
      "score": 0.9}, ...]}``;
    - JSON list ``[{"image": "a.jpg", "bbox": [x1, y1, x2, y2], "score": 0.9}, ...]``;
    - CSV with a header: ``image,x1,y1,x2,y2[,score]`` or ``image,x,y,w,h[,score]``, one row per
      person.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"boxes file {str(path)!r} not found")
    out: dict[str, list[tuple[list[float], float]]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(path)!r} is not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            for name, items in data.items():
                if not isinstance(items, list):
                    raise DataError(f"{path}: {name!r} must map to a list of boxes")
                for k, it in enumerate(items):
                    row = it if isinstance(it, dict) else {"bbox": it}
                    out.setdefault(str(name), []).append(_box_row(row, f"{path}: {name}[{k}]"))
        elif isinstance(data, list):
            for k, it in enumerate(data):
                if not isinstance(it, dict) or "image" not in it:
                    raise DataError(f"{path}: entry {k} must be an object with 'image' and 'bbox'")
                out.setdefault(str(it["image"]), []).append(_box_row(it, f"{path}: entry {k}"))
        else:
            raise DataError(f"{path}: expected a JSON object or list, got {type(data).__name__}")
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = [c.strip().lower() for c in reader.fieldnames or []]
            if "image" not in fields:
                raise DataError(
                    f"{path}: the CSV needs a header with 'image' and x1,y1,x2,y2 "
                    f"(or x,y,w,h), got {reader.fieldnames}"
                )
            for k, row in enumerate(reader, start=2):
                row = {c.strip().lower(): v for c, v in row.items() if c is not None}
                out.setdefault(row["image"].strip(), []).append(_box_row(row, f"{path}:{k}"))
    else:
        raise DataError(f"boxes file {str(path)!r} must end in .json or .csv")
    return out


def read_center_scale(path: str | os.PathLike) -> dict[str, list[tuple[np.ndarray, float]]]:
    """SPIN-style ``.npz`` (``imgname``, ``center`` (N, 2), ``scale`` (N,)): name -> crops."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"centre/scale file {str(path)!r} not found")

    with open_npz(path, "centre/scale file") as z:
        missing = [k for k in ("imgname", "center", "scale") if k not in z.files]
        if missing:
            raise DataError(f"{path}: needs imgname, center (N, 2), scale (N,); missing {missing}")
        names, center, scale = z["imgname"].astype(str), z["center"], z["scale"]
    n = len(names)
    if center.shape != (n, 2) or scale.shape != (n,):
        raise ShapeError(
            f"{path}: center must be ({n}, 2) and scale ({n},), got {center.shape} "
            f"and {scale.shape}"
        )
    if not (np.isfinite(center).all() and np.all(scale > 0)):
        raise DataError(f"{path}: center must be finite and scale > 0")
    out: dict[str, list[tuple[np.ndarray, float]]] = {}
    for name, c, s in zip(names, center.astype(np.float64), scale.astype(np.float64), strict=True):
        out.setdefault(str(name), []).append((c, float(s)))
    return out


def lookup(table: Mapping[str, list] | None, name: str) -> list | None:
    """Entries of ``name`` (a path relative to the image folder) by full path, else file name."""
    if not table:
        return None
    if name in table:
        return table[name]
    return table.get(Path(name).name)


# ---------------------------------------------------------------------------------------- HOG
def hog_detector() -> tuple[Any, str | None]:
    """``(HOGDescriptor with the default people SVM, None)`` or ``(None, reason)``."""
    cls = getattr(cv2, "HOGDescriptor", None)
    if cls is None and hasattr(cv2, "xobjdetect"):
        cls = getattr(cv2.xobjdetect, "HOGDescriptor", None)
    if cls is None:
        return None, (
            f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it "
            "to the contrib package); install opencv-python-headless<5 or "
            "opencv-contrib-python-headless, or give --boxes"
        )
    hog = cls()
    hog.setSVMDetector(cls.getDefaultPeopleDetector())
    return hog, None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), [x1, y1, x2, y2] -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.45) -> np.ndarray:
    """Greedy non-maximum suppression: indices of kept boxes, best score first.

    A box is dropped when its IoU with an already kept (higher-scoring) box exceeds ``iou``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ShapeError(f"got {len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    overlaps = box_iou(boxes, boxes)
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= overlaps[i] > iou
    return np.asarray(keep, dtype=np.int64)


def detect_hog(
    image: np.ndarray,
    hog: Any = None,
    *,
    min_score: float = 0.3,
    iou: float = 0.45,
    max_side: int = 960,
    min_height: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """People boxes (K, 4) [x1, y1, x2, y2] px and SVM scores (K,) in ``image`` (H, W, 3) uint8.

    The image is resized so its longer side is at most ``max_side`` and its height at least
    ``min_height`` (HOG's window is 64 x 128 px: smaller people are missed), detection runs
    at scale steps of 1.05, then boxes with score < ``min_score`` are dropped and the rest
    suppressed with :func:`nms`. Boxes are mapped back to the input's pixels.
    """
    if hog is None:
        hog, reason = hog_detector()
        if hog is None:
            raise RuntimeError(reason)
    h, w = image.shape[:2]
    f = min(max_side / max(h, w), max(1.0, min_height / h))
    small = (
        cv2.resize(
            image,
            (max(1, round(w * f)), max(1, round(h * f))),
            interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
        )
        if f != 1.0
        else image
    )
    fx, fy = small.shape[1] / w, small.shape[0] / h
    if small.shape[0] < 128 or small.shape[1] < 64:
        return np.zeros((0, 4)), np.zeros(0)
    rects, weights = hog.detectMultiScale(
        np.ascontiguousarray(small), winStride=(8, 8), padding=(8, 8), scale=1.05
    )
    rects = np.asarray(rects, np.float64).reshape(-1, 4)
    scores = np.asarray(weights, np.float64).reshape(-1)
    boxes = np.stack(
        [
            rects[:, 0] / fx,
            rects[:, 1] / fy,
            (rects[:, 0] + rects[:, 2]) / fx,
            (rects[:, 1] + rects[:, 3]) / fy,
        ],
        axis=1,
    )
    ok = scores >= min_score
    boxes, scores = boxes[ok], scores[ok]
    keep = nms(boxes, scores, iou)
    return boxes[keep], scores[keep]


# ---------------------------------------------------------------------------------- together
def check_inside(box: Sequence[float], height: int, width: int, where: str = "box") -> None:
    """Raise :class:`DataError` when ``box`` [x1, y1, x2, y2] does not overlap the (height,
    width) image at all (a box partly outside is fine: SPIN's crop pads with black)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise DataError(
            f"{where} {[round(v, 1) for v in (x1, y1, x2, y2)]} lies outside the "
            f"{width} x {height} image (boxes are [x1, y1, x2, y2] pixels)"
        )


def find_people(
    image: np.ndarray,
    name: str,
    *,
    boxes: Mapping[str, list] | None = None,
    centers: Mapping[str, list] | None = None,
    detector: Any = None,
    rescale: float = RESCALE,
    fallback: str = "none",
) -> list[Person]:
    """The people of one image (see the module docstring for the order of sources).

    Args:
        image: (H, W, 3) uint8 RGB.
        name: the image's path relative to the image folder (key into ``boxes``/``centers``).
        boxes: from :func:`read_boxes`; centers: from :func:`read_center_scale`.
        detector: a callable ``image -> list[Detection]`` built once per run
            (:func:`ihmr.pose.detectors.build_detector`: cascades + HOG, HOG alone, or
            :class:`ihmr.pose.dnn.OnnxDetector`), or None for no automatic detection.
        fallback: ``"none"`` (nobody found: no person) or ``"whole-image"``.
    Returns:
        The people, best first for detections; empty when nobody is found and there is no
        fallback. Raises :class:`DataError` when a given box lies outside the image.
    """
    if fallback not in FALLBACKS:
        raise ConfigError(f"fallback must be one of {list(FALLBACKS)}, got {fallback!r}")
    h, w = image.shape[:2]
    given = lookup(boxes, name)
    if given:
        people = []
        for k, (box, score) in enumerate(given):
            check_inside(box, h, w, f"box {k}")
            c, s = bbox_to_center_scale(box, rescale)
            people.append(Person(np.asarray(box, np.float64), c, s, float(score), "boxes"))
        return people
    crops = lookup(centers, name)
    if crops:
        for k, (c, s) in enumerate(crops):
            check_inside(center_scale_to_bbox(c, s), h, w, f"centre/scale crop {k}")
        return [
            Person(
                center_scale_to_bbox(c, s), np.asarray(c, np.float64), float(s), 1.0, "center_scale"
            )
            for c, s in crops
        ]
    if detector is not None:
        people = []
        for d in detector(image):
            c, s = bbox_to_center_scale(d.box, rescale)
            people.append(
                Person(
                    np.asarray(d.box, np.float64),
                    c,
                    s,
                    float(d.score),
                    d.source,
                    "+".join(d.evidence),
                )
            )
        if people:
            return people
    return [whole_image(h, w)] if fallback == "whole-image" else []
