"""Automatic people detection for ``ihmr predict``: what OpenCV ships, or a local ONNX network.

Two detectors, both called as ``detector(image)`` on an (H, W, 3) uint8 RGB image and returning
:class:`Detection` s (box ``[x1, y1, x2, y2]`` in the image's pixels, clipped to it; ``score`` in
[0, 1]; the ``source`` that gave the box and the ``evidence``, every source that agreed):

**:class:`CascadeDetector`** (``--detector auto``, the default) needs nothing but the OpenCV wheel:
its Haar cascades (``cv2.data.haarcascades``) and the HOG people detector. Each raw hit becomes a
*candidate* with a body box, an estimated head box and a score:

- ``face`` (``haarcascade_frontalface_default``) and ``profile_face``
  (``haarcascade_profileface``, run on the image and on its mirror image, since it only knows
  faces turned one way): the head is the face box grown to hair and chin; the body follows from
  the usual proportions of an adult, about 7.5 head heights tall and about 2.8 head widths wide
  (shoulders and hanging arms), from the top of the head down, clipped to the image. A portrait
  thus gets a box from the head to the bottom edge; a standing person one down to the feet.
- ``upper_body`` (``haarcascade_upperbody``, head and shoulders): the head is the upper middle
  of the box, the body follows as for a face.
- ``full_body`` (``haarcascade_fullbody``) and ``hog`` (``HOGDescriptor``'s default people SVM):
  the box is the body; the head is its top eighth.

Scores: a cascade hit merged from ``n`` neighbouring windows scores ``w * (1 - exp(-n / 8))``
and a HOG hit of SVM margin ``m`` scores ``w * (1 - exp(-m / 0.5))``, with the trust ``w`` of
the source (:data:`SOURCE_WEIGHT`: 1 for frontal faces, the most reliable, down to 0.6 for
upper and full body and HOG, which fire on furniture and torsos). Candidates are then merged by
non-maximum suppression, greedily in order of score: a candidate whose head coincides with that
of a person already kept (head centres closer than 0.7 head widths, head sizes within a factor
of 2), or whose body box overlaps it with IoU > 0.6, is the same person; it adds its source to
the evidence, and the person's score becomes the noisy-or ``1 - prod(1 - s)`` of the best score
of each agreeing source (two detectors that agree are more believable than one). A body-only
hit (``upper_body``, ``full_body``, ``hog``) lying at least 70 % inside a kept person's box and
not reaching its head is a part of that person (HOG's usual false alarm on a torso) and is
dropped, and two whole-body hits stacked one above the other (same width, touching) are one
person's upper and lower half, boxed together. Finally people scoring below
``score_threshold`` or with a box height below ``min_size`` px are dropped, and at most
``max_people`` kept (best first). These rules and constants are heuristics tuned on the photos
listed in docs/predict.md; they are not learned.

**:class:`ihmr.pose.dnn.OnnxDetector`** (``--detector-model FILE.onnx``): a stronger person
detector the user has as a local file, run by OpenCV's DNN module (see there).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, DataError
from .detect import box_iou, detect_hog, hog_detector

CASCADE_FILES = {
    "face": "haarcascade_frontalface_default.xml",
    "profile_face": "haarcascade_profileface.xml",
    "upper_body": "haarcascade_upperbody.xml",
    "full_body": "haarcascade_fullbody.xml",
}
AUTO_SOURCES = ("face", "profile_face", "upper_body", "full_body", "hog")
SOURCE_WEIGHT = {
    "face": 1.0,
    "profile_face": 0.9,
    "upper_body": 0.6,
    "full_body": 0.6,
    "hog": 0.6,
    "dnn": 1.0,
}
BODY_ONLY = ("upper_body", "full_body", "hog")
WHOLE_BODY = ("full_body", "hog")
# each part runs on the image shrunk to SIDE_FACTOR * side (longer side, px): frontal faces,
# the smallest thing looked for, at full detection size; the rest smaller, which keeps the
# whole under 0.2 s of one core for a 512 px image (scripts/bench_detect.py); the smallest
# windows (faces of 26 px at 384 px, profiles of 22 px at 192 px) bound the costliest scales
SIDE_FACTOR = {"face": 1.0, "profile_face": 0.5, "upper_body": 0.4, "full_body": 0.5, "hog": 0.7}
SCALE_STEP = {"face": 1.1, "profile_face": 1.1, "upper_body": 1.2, "full_body": 1.2}
MIN_WINDOW = {
    "face": (26, 26),
    "profile_face": (22, 22),
    "upper_body": (24, 20),
    "full_body": (14, 28),
}
HEADS_TALL = 7.5  # an adult is about 7.5 head heights tall
HEADS_WIDE = 2.8  # shoulders and hanging arms: about 2.8 head widths


@dataclass
class Detection:
    """One person found automatically: ``box`` (4,) [x1, y1, x2, y2] px, ``score`` in [0, 1],
    ``source`` (the detector of the box) and ``evidence`` (every agreeing source, best first)."""

    box: np.ndarray
    score: float
    source: str
    evidence: tuple[str, ...] = ()
    head: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DetectSettings:
    """What the automatic detectors keep: people scoring at least ``score_threshold`` whose box
    is at least ``min_size`` px tall, at most ``max_people`` of them (best first). ``side`` is
    the longer side (px) the image is shrunk to for the cascades and HOG (speed: the cost grows
    with the pixel count); ``sources`` picks the cascade detector's parts; ``hog_side`` the
    longer side for HOG (default ``SIDE_FACTOR["hog"] * side``; ``--detector hog`` alone uses
    960 and, for small images, at least 256 px of height, as ``detect_hog``)."""

    score_threshold: float = 0.3
    min_size: float = 0.0
    max_people: int = 10
    side: int = 384
    sources: tuple[str, ...] = AUTO_SOURCES
    hog_side: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_size) and self.min_size >= 0):
            raise ConfigError(f"--min-size must be >= 0 px, got {self.min_size}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"--score-threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_people < 1:
            raise ConfigError(f"--max-people must be >= 1, got {self.max_people}")
        if self.side < 64:
            raise ConfigError(f"the detection side must be >= 64 px, got {self.side}")
        bad = [s for s in self.sources if s not in AUTO_SOURCES]
        if bad or not self.sources:
            raise ConfigError(
                f"detector sources must be among {list(AUTO_SOURCES)}, got {list(self.sources)}"
            )


# ----------------------------------------------------------------------- candidate geometry
def _clip(box: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.array(
        [
            np.clip(box[0], 0, w),
            np.clip(box[1], 0, h),
            np.clip(box[2], 0, w),
            np.clip(box[3], 0, h),
        ],
        np.float64,
    )


def body_from_head(head: np.ndarray, h: int, w: int) -> np.ndarray:
    """Body box (4,) from a head box [x1, y1, x2, y2]: :data:`HEADS_TALL` head heights down from
    the top of the head, :data:`HEADS_WIDE` head widths wide about its centre, clipped to the
    (h, w) image."""
    hw, hh = head[2] - head[0], head[3] - head[1]
    cx = (head[0] + head[2]) / 2
    return _clip(
        np.array(
            [cx - HEADS_WIDE / 2 * hw, head[1], cx + HEADS_WIDE / 2 * hw, head[1] + HEADS_TALL * hh]
        ),
        h,
        w,
    )


def head_of(source: str, x: float, y: float, bw: float, bh: float) -> np.ndarray:
    """Estimated head box of a raw hit ``(x, y, bw, bh)`` (top-left, size, px) of ``source``.

    Face boxes of the cascades run from the brows to the chin: the head (hair, chin) is about
    1.45 box heights, starting 0.4 box heights above it. An upper-body box holds the head in
    its upper middle (0.4 of its width, from 0.2 to 0.7 of its height). A full-body or HOG box
    holds the head in its top eighth (HOG's 64 x 128 window has 16 px margins)."""
    if source in ("face", "profile_face"):
        return np.array([x - 0.05 * bw, y - 0.4 * bh, x + 1.05 * bw, y + 1.05 * bh])
    cx = x + bw / 2
    if source == "upper_body":
        return np.array([cx - 0.2 * bw, y + 0.2 * bh, cx + 0.2 * bw, y + 0.7 * bh])
    top = y + (bh / 8 if source == "hog" else 0.02 * bh)
    hh = bh * (0.75 if source == "hog" else 0.95) / HEADS_TALL
    return np.array([cx - 0.4 * hh, top, cx + 0.4 * hh, top + hh])


def _same_person(a_head: np.ndarray, b_head: np.ndarray) -> bool:
    wa, wb = a_head[2] - a_head[0], b_head[2] - b_head[0]
    if not 0.5 <= wa / wb <= 2.0:
        return False
    ca = (a_head[:2] + a_head[2:]) / 2
    cb = (b_head[:2] + b_head[2:]) / 2
    return float(np.hypot(*(ca - cb))) < 0.7 * max(wa, wb)


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of box ``a``'s area inside box ``b``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return iw * ih / area if area > 0 else 0.0


def _stacked(a: np.ndarray, b: np.ndarray) -> bool:
    """Two upright whole-body boxes one above the other, of about the same width (within 1.5x),
    overlapping horizontally by at least 0.6 of the narrower and vertically touching (a gap of
    at most 0.1 of the taller): HOG's two windows on one person's upper and lower half."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if not (wa > 0 and wb > 0 and 1 / 1.5 <= wa / wb <= 1.5):
        return False
    overlap_x = min(a[2], b[2]) - max(a[0], b[0])
    gap_y = max(a[1], b[1]) - min(a[3], b[3])
    return overlap_x >= 0.6 * min(wa, wb) and gap_y <= 0.1 * max(a[3] - a[1], b[3] - b[1])


def merge_candidates(cands: list[Detection], settings: DetectSettings) -> list[Detection]:
    """Non-maximum suppression across sources (see the module docstring): candidates (each
    with ``head``) -> people, best first, thresholded, at most ``settings.max_people``."""
    people: list[dict[str, Any]] = []
    for c in sorted(cands, key=lambda d: -d.score):
        if not (c.box[2] > c.box[0] and c.box[3] > c.box[1]):
            continue  # clipped to nothing
        for p in people:
            if _same_person(p["head"], c.head) or box_iou(p["box"][None], c.box[None])[0, 0] > 0.6:
                p["best"][c.source] = max(p["best"].get(c.source, 0.0), c.score)
                break
            if c.source in WHOLE_BODY and p["source"] in WHOLE_BODY and _stacked(p["box"], c.box):
                # one person's two halves: one box around both, the head of the upper one
                if c.box[1] < p["box"][1]:
                    p["head"] = c.head
                p["box"] = np.concatenate(
                    [np.minimum(p["box"][:2], c.box[:2]), np.maximum(p["box"][2:], c.box[2:])]
                )
                p["best"][c.source] = max(p["best"].get(c.source, 0.0), c.score)
                break
            if (
                c.source in BODY_ONLY
                and _inside_fraction(c.box, p["box"]) >= 0.7
                and not c.head[1] <= p["head"][3]
            ):
                break  # a part of a person already kept (a torso, legs)
        else:
            people.append(
                {"box": c.box, "head": c.head, "source": c.source, "best": {c.source: c.score}}
            )
    out = []
    for p in people:
        best = sorted(p["best"].items(), key=lambda kv: -kv[1])
        score = 1.0 - float(np.prod([1.0 - s for _, s in best]))
        box = p["box"]
        if score < settings.score_threshold or box[3] - box[1] < settings.min_size:
            continue
        out.append(Detection(box, score, p["source"], tuple(k for k, _ in best), p["head"]))
    out.sort(key=lambda d: -d.score)
    return out[: settings.max_people]


# --------------------------------------------------------------------------- OpenCV's own
class CascadeDetector:
    """OpenCV's Haar cascades and HOG, merged (module docstring). Built once per run;
    ``notes`` says which parts are missing from the installed OpenCV (and so skipped)."""

    def __init__(self, settings: DetectSettings | None = None) -> None:
        self.settings = settings or DetectSettings()
        self.notes: list[str] = []
        self.cascades: dict[str, Any] = {}
        folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".")
        for src in self.settings.sources:
            if src == "hog":
                continue
            path = folder / CASCADE_FILES[src]
            cascade = cv2.CascadeClassifier(str(path)) if path.is_file() else None
            if cascade is None or cascade.empty():
                self.notes.append(
                    f"{src} skipped: OpenCV {cv2.__version__} has no "
                    f"{CASCADE_FILES[src]} under {str(folder)!r}"
                )
                continue
            self.cascades[src] = cascade
        self.hog = None
        if "hog" in self.settings.sources:
            self.hog, reason = hog_detector()
            if reason:
                self.notes.append(reason)
        if not self.cascades and self.hog is None:
            raise DataError("no automatic detector available: " + "; ".join(self.notes))

    def candidates(self, image: np.ndarray) -> list[Detection]:
        """Every raw hit of every part as a candidate (unmerged), boxes in ``image`` px."""
        h, w = image.shape[:2]
        gray_full = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        grays: dict[int, tuple[np.ndarray, float, float]] = {}
        out: list[Detection] = []
        for src, cascade in self.cascades.items():
            side = max(64, round(self.settings.side * SIDE_FACTOR[src]))
            if side not in grays:  # one shrunk, equalised grey image per detection side
                f = min(1.0, side / max(h, w))
                g = (
                    gray_full
                    if f == 1.0
                    else cv2.resize(
                        gray_full,
                        (max(1, round(w * f)), max(1, round(h * f))),
                        interpolation=cv2.INTER_AREA,
                    )
                )
                grays[side] = (cv2.equalizeHist(g), g.shape[1] / w, g.shape[0] / h)
            gray, fx, fy = grays[side]
            views = [(gray, False)] + (
                [(gray[:, ::-1].copy(), True)] if src == "profile_face" else []
            )
            for view, mirrored in views:
                rects, counts = cascade.detectMultiScale2(
                    view, scaleFactor=SCALE_STEP[src], minNeighbors=3, minSize=MIN_WINDOW[src]
                )
                for (x, y, bw, bh), n in zip(
                    np.asarray(rects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True
                ):
                    if mirrored:
                        x = view.shape[1] - x - bw
                    x, y, bw, bh = x / fx, y / fy, bw / fx, bh / fy
                    head = head_of(src, x, y, bw, bh)
                    box = (
                        _clip(np.array([x, y, x + bw, y + bh], np.float64), h, w)
                        if src == "full_body"
                        else body_from_head(head, h, w)
                    )
                    score = SOURCE_WEIGHT[src] * (1.0 - math.exp(-float(n) / 8.0))
                    out.append(Detection(box, score, src, (src,), head))
        if self.hog is not None:
            st = self.settings
            boxes, margins = detect_hog(
                image,
                self.hog,
                min_score=0.0,
                min_height=128 if st.hog_side is None else 256,
                max_side=st.hog_side or round(st.side * SIDE_FACTOR["hog"]),
            )
            for b, m in zip(boxes, margins, strict=True):
                head = head_of("hog", b[0], b[1], b[2] - b[0], b[3] - b[1])
                score = SOURCE_WEIGHT["hog"] * (1.0 - math.exp(-float(m) / 0.5))
                out.append(Detection(_clip(b, h, w), score, "hog", ("hog",), head))
        return out

    def __call__(self, image: np.ndarray) -> list[Detection]:
        return merge_candidates(self.candidates(image), self.settings)


DETECTORS = ("auto", "hog", "dnn", "none")


def build_detector(
    kind: str = "auto",
    settings: DetectSettings | None = None,
    model: str | os.PathLike | None = None,
    person_class: int = 0,
) -> Any:
    """The detector of ``ihmr predict --detector KIND``: ``"auto"`` (cascades + HOG), ``"hog"``
    (HOG alone), ``"dnn"`` (``model``, an ONNX file) or ``"none"`` (returns None). A ``model``
    given with ``"auto"`` selects ``"dnn"``. Everything is checked here, before any output."""
    settings = settings or DetectSettings()
    if kind not in DETECTORS:
        raise ConfigError(f"--detector must be one of {list(DETECTORS)}, got {kind!r}")
    if model is not None and kind == "auto":
        kind = "dnn"
    if kind == "dnn":
        if model is None:
            raise ConfigError(
                "--detector dnn needs --detector-model FILE.onnx (a local person "
                "detector; see docs/predict.md)"
            )
        from .dnn import OnnxDetector  # here: dnn imports this module

        return OnnxDetector(model, settings, person_class)
    if model is not None:
        raise ConfigError(f"--detector-model is only used with --detector dnn, not {kind!r}")
    if kind == "hog":
        return CascadeDetector(replace(settings, sources=("hog",), hog_side=960))
    if kind == "auto":
        return CascadeDetector(settings)
    return None
