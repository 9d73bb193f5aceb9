"""Images in, bodies out: the library side of ``ihmr predict``.

For every image of a folder: find the people (:mod:`ihmr.pose.detect`), crop each the SPIN way
(:func:`ihmr.pose.crop.crop_image`: square of ``200 * scale`` px about ``center``, 224 x 224,
ImageNet normalisation), run backbone and head in batches (:mod:`ihmr.pose.checkpoints`), and
write to ``out``:

- ``predictions.npz``, one row per person: ``pose`` (N, 72) axis-angle and ``rotmat``
  (N, 24, 3, 3) (camera frame, as SPIN predicts), ``betas`` (N, 10), ``cam`` (N, 3) SPIN's
  weak-perspective [s, tx, ty] of the crop, ``center`` (N, 2) px, ``scale`` (N,), ``bbox`` (N, 4)
  [x1, y1, x2, y2] px, ``confidence`` (N,) (NaN for the whole image), ``imgname`` (N,) paths
  relative to the image folder, ``source`` (N,) where the person came from, ``evidence`` (N,)
  every source that agreed (``+``-joined), ``person`` (N,) index within its image.
  ``ihmr render predictions.npz --images DIR`` and ``ihmr eval``'s predictions path read it
  (keys ``pose``, ``betas``, ``cam``, ``center``, ``scale``, ``imgname``);
- ``summary.json``: checkpoint and device, counts, timings, and per image the people found, the
  sources used, the PNGs written; every image where nobody was found (``nobody``) and every
  image that could not be read or whose box lies outside it (``skipped``, with why);
- ``overlays/<name>.png`` (all people over the image, front view; each person rendered with
  the full-image camera of its own crop, Eq. (3) of :mod:`ihmr.spin`, nearer people
  drawn last) and ``overlays/<name>_side.png`` (each body turned 90 degrees about its own centre,
  on white). With ``show_boxes`` the front overlay also shows each person's box labelled with
  its source and score (:func:`ihmr.pose.show.draw_boxes`); without rendering, the overlay is
  the image with the boxes.

Every file is written atomically. An unreadable image is reported and skipped; it never stops
the run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..body import load_body
from ..errors import ConfigError, DataError
from ..geometry import matrix_to_axis_angle
from ..io import check_writable_dir, read_image, save_npz, write_json
from ..render import backend_problem, render_available
from ..render.mesh import MeshRenderer, side_view
from ..render.strip import save_png
from ..runs import resolve_device
from ..spin import crop_intrinsics, weak_perspective_to_translation
from ..training import Progress
from . import detect as D
from .checkpoints import load_model
from .crop import crop_image, normalise
from .detectors import DetectSettings, build_detector
from .show import draw_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(
    images: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> tuple[Path, list[str]]:
    """``(root, names)``: image files under the folder ``images`` (recursive, sorted, paths
    relative to it; files under ``exclude`` are left out), or the one file ``images``."""
    p = Path(images)
    if p.is_file():
        return p.parent, [p.name]
    if not p.is_dir():
        raise FileNotFoundError(f"image folder {str(p)!r} not found")
    ex = Path(exclude).resolve() if exclude is not None else None
    names = []
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            if ex is not None and ex in f.resolve().parents:
                continue
            names.append(f.relative_to(p).as_posix())
    return p, names


def overlay_stems(names: list[str]) -> dict[str, str]:
    """PNG stem per image name: folders joined with ``__``, the extension dropped unless two
    names would then collide (``a.jpg`` and ``a.png`` -> ``a_jpg``, ``a_png``)."""
    plain = {n: n.rsplit(".", 1)[0].replace("/", "__") for n in names}
    seen: dict[str, int] = {}
    for v in plain.values():
        seen[v] = seen.get(v, 0) + 1
    return {
        n: (v if seen[v] == 1 else n.replace("/", "__").replace(".", "_")) for n, v in plain.items()
    }


def run_model(
    model: Any,
    crops: np.ndarray,
    device: Any,
    batch_size: int,
    timing: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Backbone + head on normalised crops (B, 3, 224, 224) -> numpy ``rotmat``, ``pose``
    (axis-angle), ``betas``, ``cam``, in sub-batches of ``batch_size`` on ``device``."""
    outs: dict[str, list] = {"rotmat": [], "pose": [], "betas": [], "cam": []}
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for a in range(0, len(crops), batch_size):
            x = torch.from_numpy(crops[a : a + batch_size]).to(device, non_blocking=True)
            t0 = time.perf_counter()
            feats = model.backbone.features(x)
            sync()
            t1 = time.perf_counter()
            out = model.head(feats)
            sync()
            t2 = time.perf_counter()
            if timing is not None:
                timing["backbone"] = timing.get("backbone", 0.0) + t1 - t0
                timing["head"] = timing.get("head", 0.0) + t2 - t1
            b = out.rotmat.shape[0]
            outs["rotmat"].append(out.rotmat.float().cpu().numpy())
            outs["pose"].append(
                matrix_to_axis_angle(out.rotmat.double()).reshape(b, 72).float().cpu().numpy()
            )
            outs["betas"].append(out.betas.float().cpu().numpy())
            outs["cam"].append(out.cam.float().cpu().numpy())
    empty = {"rotmat": (0, 24, 3, 3), "pose": (0, 72), "betas": (0, 10), "cam": (0, 3)}
    return {k: np.concatenate(v) if v else np.zeros(empty[k], np.float32) for k, v in outs.items()}


def render_people(
    renderer: Any,
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    cams: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    max_side: int = 1024,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Front overlay and side view of several people in one image.

    ``vertices`` (K, V, 3), ``cams`` (K, 3), ``centers`` (K, 2), ``scales`` (K,). The image is
    shrunk to at most ``max_side`` px (focal lengths and centres follow). Returns ``(front,
    side, skipped)`` with uint8 (H, W, 3) images and the indices of people not drawn (camera
    scale <= 0: such a body would sit behind the camera).
    """
    h, w = image.shape[:2]
    r = min(1.0, max_side / max(h, w))
    if r < 1.0:
        image = cv2.resize(
            image, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA
        )
    rx, ry = image.shape[1] / w, image.shape[0] / h
    front, side = image, np.full_like(image, 255)
    skipped = []
    # nearer people last: depth in a common camera is proportional to 1 / (s * crop side)
    order = np.argsort(cams[:, 0] * scales, kind="stable")
    for k in order:
        if not cams[k, 0] > 0:
            skipped.append(int(k))
            continue
        t = weak_perspective_to_translation(cams[k])
        f, pp = crop_intrinsics(centers[k], float(scales[k]))
        f, pp = f * rx, pp * np.array([rx, ry])
        front = renderer.render(
            vertices[k], faces, t, focal_length=f, principal_point=pp, image=front
        )
        side = renderer.render(
            side_view(vertices[k]), faces, t, focal_length=f, principal_point=pp, image=side
        )
    return front, side, sorted(skipped)


def _plain(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


@dataclasses.dataclass
class PredictOptions:
    """Settings of :func:`predict_images` (the options of ``ihmr predict``)."""

    backbone: str | os.PathLike | None = None
    """For a trained head: the SPIN checkpoint its features came from."""
    boxes: str | os.PathLike | None = None
    """JSON/CSV of user boxes (:func:`ihmr.pose.detect.read_boxes`)."""
    centers: str | os.PathLike | None = None
    """SPIN ``.npz`` with imgname/center/scale (:func:`ihmr.pose.detect.read_center_scale`)."""
    detector: str = "auto"
    """For images without a box or centre: ``"auto"`` (OpenCV's cascades + HOG), ``"hog"``,
    ``"dnn"`` (``detector_model``) or ``"none"`` (:func:`ihmr.pose.detectors.build_detector`)."""
    detector_model: str | os.PathLike | None = None
    """A local ONNX person detector for ``"dnn"``."""
    person_class: int = 0
    """Class index of people in ``detector_model``."""
    score_threshold: float = 0.3
    """Detections kept: score >= this (in [0, 1])."""
    min_size: float = 0.0
    """Detections kept: box at least this many px tall."""
    max_people: int = 10
    """Detections kept: at most this many per image."""
    fallback: str = "none"
    """``"none"`` (an image where nobody is found is listed in ``nobody`` and gets no row) or
    ``"whole-image"`` (one person spanning the image, SPIN's demo default)."""
    show_boxes: bool = False
    """Draw the boxes with their source and score on the overlay."""
    device: str = "auto"
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ..."""
    batch_size: int = 16
    """Crops per forward pass."""
    render: bool = True
    """Write the overlay and side-view PNGs (needs an offscreen OpenGL backend; when none is
    found, predictions are still written and the summary says why)."""
    smpl_dir: str | os.PathLike | None = None
    """SMPL folder for rendering (default: configured SMPL, else the open body)."""
    allow_mismatch: bool = False
    """Run a head on a backbone with another fingerprint."""
    progress: bool = False
    """Show a progress bar."""
    max_render_side: int = 1024
    """Overlays are drawn on the image shrunk to at most this many px."""

    def check(self) -> None:
        """Raise :class:`~ihmr.errors.ConfigError` for a bad batch size or fallback."""
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.fallback not in D.FALLBACKS:
            raise ConfigError(
                f"--fallback must be one of {list(D.FALLBACKS)}, got {self.fallback!r}"
            )

    def detect_settings(self) -> DetectSettings:
        return DetectSettings(
            score_threshold=self.score_threshold, min_size=self.min_size, max_people=self.max_people
        )


@dataclasses.dataclass
class _Found:
    """One readable image, its people and their crops, and its ``summary.json`` entry."""

    entry: dict[str, Any]
    image: np.ndarray
    people: list
    crops: list[np.ndarray]


class _Results:
    """What a run collects: one row per person, the model outputs, and per image what happened."""

    ROWS = ("center", "scale", "bbox", "confidence", "imgname", "source", "evidence", "person")
    EMPTY = {"rotmat": (0, 24, 3, 3), "pose": (0, 72), "betas": (0, 10), "cam": (0, 3)}

    def __init__(self) -> None:
        self.rows: dict[str, list] = {k: [] for k in self.ROWS}
        self.preds: dict[str, list] = {k: [] for k in self.EMPTY}
        self.per_image: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.nobody: list[str] = []

    def add_people(self, name: str, people: list) -> None:
        for i, p in enumerate(people):
            for key, value in (
                ("center", p.center),
                ("scale", p.scale),
                ("bbox", p.bbox),
                ("confidence", p.confidence),
                ("imgname", name),
                ("source", p.source),
                ("evidence", p.evidence),
                ("person", i),
            ):
                self.rows[key].append(value)

    def add_outputs(self, res: dict[str, np.ndarray]) -> None:
        for key in self.preds:
            self.preds[key].append(res[key])

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns of ``predictions.npz``."""
        rows, n = self.rows, len(self.rows["imgname"])
        arrays = {
            k: (np.concatenate(v) if v else np.zeros(self.EMPTY[k], np.float32))
            for k, v in self.preds.items()
        }
        arrays.update(
            center=np.asarray(rows["center"], np.float64).reshape(n, 2),
            scale=np.asarray(rows["scale"], np.float64).reshape(n),
            bbox=np.asarray(rows["bbox"], np.float64).reshape(n, 4),
            confidence=np.asarray(rows["confidence"], np.float64).reshape(n),
            imgname=np.asarray(rows["imgname"], dtype=str).reshape(n),
            source=np.asarray(rows["source"], dtype=str).reshape(n),
            evidence=np.asarray(rows["evidence"], dtype=str).reshape(n),
            person=np.asarray(rows["person"], np.int64).reshape(n),
        )
        return arrays


def _boxes_over(shown: np.ndarray, image: np.ndarray, people: list) -> np.ndarray:
    """``shown`` (``image``, possibly resized) with each person's box, source and score."""
    scale = (shown.shape[1] / image.shape[1], shown.shape[0] / image.shape[0])
    return draw_boxes(
        shown,
        [p.bbox for p in people],
        [p.source for p in people],
        [p.confidence for p in people],
        scale,
    )


class _Overlays:
    """Writes ``overlays/<stem>.png`` (and ``<stem>_side.png``) per image: the rendered bodies
    when an offscreen renderer is available, else (with ``show_boxes``) the boxes alone."""

    def __init__(self, opts: PredictOptions, out: Path, stems: dict[str, str]) -> None:
        self.opts, self.folder, self.stems = opts, out / "overlays", stems
        self.note: str | None = None
        self.body = self.renderer = None
        if opts.render:
            if render_available():
                self.body = load_body("neutral", opts.smpl_dir)
                self.renderer = MeshRenderer()
            else:
                self.note = f"overlays skipped: {backend_problem()}"

    def draw(self, found: _Found, res: dict[str, np.ndarray]) -> None:
        """Draw the people of ``found``; ``res`` holds the model outputs of exactly them."""
        if self.renderer is not None:
            self._render(found, res)
        elif self.opts.show_boxes:
            self._boxes(found)

    def _boxes(self, found: _Found) -> None:
        image = found.image
        r = min(1.0, self.opts.max_render_side / max(image.shape[:2]))
        small = (
            image
            if r == 1.0
            else cv2.resize(
                image,
                (max(1, round(image.shape[1] * r)), max(1, round(image.shape[0] * r))),
                interpolation=cv2.INTER_AREA,
            )
        )
        name = found.entry["image"]
        found.entry["overlay"] = str(
            save_png(
                self.folder / f"{self.stems[name]}.png", _boxes_over(small, image, found.people)
            )
        )

    def _render(self, found: _Found, res: dict[str, np.ndarray]) -> None:
        entry, people = found.entry, found.people
        try:
            with torch.no_grad():
                v = self.body(
                    torch.from_numpy(res["betas"]), torch.from_numpy(res["rotmat"])
                ).vertices.numpy()
            front, side, bad = render_people(
                self.renderer,
                found.image,
                v,
                self.body.faces,
                res["cam"],
                np.array([p.center for p in people]),
                np.array([p.scale for p in people]),
                self.opts.max_render_side,
            )
            if self.opts.show_boxes:
                front = _boxes_over(front, found.image, people)
            stem = self.stems[entry["image"]]
            entry["overlay"] = str(save_png(self.folder / f"{stem}.png", front))
            entry["side"] = str(save_png(self.folder / f"{stem}_side.png", side))
            if bad:
                entry["not_drawn"] = bad
        except Exception as exc:  # noqa: BLE001 - one failed render must not stop the run
            entry["render_error"] = f"{type(exc).__name__}: {exc}"


def _find(
    root: Path, name: str, opts: PredictOptions, inputs: dict[str, Any], timing: dict[str, float]
) -> _Found | str:
    """Read image ``name``, find its people and crop them; or why the image is skipped."""
    t = time.perf_counter()
    try:
        image = read_image(root / name)
    except (OSError, ValueError) as exc:
        return str(exc)
    try:
        td = time.perf_counter()
        people = D.find_people(
            image,
            name,
            boxes=inputs["boxes"],
            centers=inputs["centers"],
            detector=inputs["finder"],
            fallback=opts.fallback,
        )
        timing["detect"] += time.perf_counter() - td
        crops = [normalise(crop_image(image, p.center, p.scale)) for p in people]
    except (ValueError, cv2.error) as exc:  # a bad box of this image: report, go on
        return str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
    by: dict[str, int] = {}
    for p in people:
        by[p.source] = by.get(p.source, 0) + 1
    entry = {
        "image": name,
        "height": image.shape[0],
        "width": image.shape[1],
        "people": len(people),
        "by_source": by,
        "source": people[0].source if people else None,
        "confidence": [_plain(p.confidence) for p in people],
    }
    timing["read_detect_crop"] += time.perf_counter() - t
    return _Found(entry, image, people, crops)


def _predict_chunk(
    chunk: list[_Found],
    model: Any,
    dev: Any,
    opts: PredictOptions,
    results: _Results,
    overlays: _Overlays,
    timing: dict[str, float],
) -> None:
    """One model pass over the crops of ``chunk``; collect the outputs, draw each image."""
    if not chunk:
        return
    crops = np.stack([c for found in chunk for c in found.crops])
    res = run_model(model, crops, dev, opts.batch_size, timing)
    results.add_outputs(res)
    a = 0
    for found in chunk:
        n = len(found.people)
        t = time.perf_counter()
        overlays.draw(found, {k: v[a : a + n] for k, v in res.items()})
        if overlays.renderer is not None or opts.show_boxes:
            timing["render"] += time.perf_counter() - t
        a += n


def _read_inputs(images: str | os.PathLike, out: Path, opts: PredictOptions) -> dict[str, Any]:
    """Check every input before any work: the images, the boxes / centres, the detector."""
    root, names = list_images(images, exclude=out)
    if not names:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {str(images)!r}")
    return {
        "root": root,
        "names": names,
        "boxes": D.read_boxes(opts.boxes) if opts.boxes is not None else None,
        "centers": D.read_center_scale(opts.centers) if opts.centers is not None else None,
        "finder": build_detector(
            opts.detector, opts.detect_settings(), opts.detector_model, opts.person_class
        ),
    }


def _summary(
    inputs: dict[str, Any],
    results: _Results,
    arrays: dict[str, np.ndarray],
    opts: PredictOptions,
    loaded: Any,
    dev: Any,
    overlays: _Overlays,
    timing: dict[str, float],
    out: Path,
) -> dict[str, Any]:
    """The content of ``summary.json``."""
    names = inputs["names"]
    counts = {s: int(np.sum(arrays["source"] == s)) for s in D.SOURCES}
    known = set(names) | {Path(x).name for x in names}
    unmatched = {
        f: sorted(k for k in (table or {}) if k not in known)
        for f, table in (("boxes", inputs["boxes"]), ("centers", inputs["centers"]))
    }
    return {
        "images_dir": str(inputs["root"]),
        "images": len(names),
        "images_done": len(results.per_image),
        "people": len(arrays["imgname"]),
        "people_by_source": counts,
        "nobody": results.nobody,
        "skipped": results.skipped,
        "unmatched_entries": {k: v for k, v in unmatched.items() if v},
        "checkpoint": {
            "kind": loaded.kind,
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in loaded.info.items()},
        },
        "device": str(dev),
        "batch_size": opts.batch_size,
        "detector": opts.detector,
        "detector_model": str(opts.detector_model) if opts.detector_model is not None else None,
        "detect_settings": {
            "score_threshold": opts.score_threshold,
            "min_size": opts.min_size,
            "max_people": opts.max_people,
            "fallback": opts.fallback,
        },
        "detector_notes": list(getattr(inputs["finder"], "notes", [])),
        "render": overlays.note or (overlays.renderer is not None),
        "show_boxes": opts.show_boxes,
        "body": getattr(overlays.body, "name", None),
        "seconds": {k: round(v, 4) for k, v in timing.items()},
        "predictions": str(out / "predictions.npz"),
        "per_image": results.per_image,
    }


def predict_images(
    images: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    opts: PredictOptions | None = None,
) -> dict[str, Any]:
    """Predict bodies for every image under ``images``; write everything to ``out``.

    Args:
        images: an image folder (searched recursively) or one image file.
        checkpoint: SPIN ``model_checkpoint.pt``, an ``ihmr train`` head or an export
            (:func:`ihmr.pose.checkpoints.load_model`); ``opts.backbone`` for a head.
        out: the output folder (created after every input check, so a failed start leaves none).
        opts: the settings (:class:`PredictOptions`; defaults when ``None``). Images without an
            entry in ``opts.boxes`` / ``opts.centers`` go to ``opts.detector``.
    Returns:
        The summary written to ``summary.json``.
    """
    opts = opts or PredictOptions()
    opts.check()
    out = Path(out)
    inputs = _read_inputs(images, out, opts)
    stems = overlay_stems(inputs["names"])
    dev = resolve_device(opts.device)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = load_model(checkpoint, opts.backbone, allow_mismatch=opts.allow_mismatch)
    model = loaded.model.to(dev)
    timing["load"] = time.perf_counter() - t0
    out = check_writable_dir(out)  # after every input check: a failed start leaves no folder
    overlays = _Overlays(opts, out, stems)
    for k in ("read_detect_crop", "detect", "backbone", "head", "render"):
        timing.setdefault(k, 0.0)

    results, chunk, pending = _Results(), [], 0
    with Progress(len(inputs["names"]), "predict", enabled=opts.progress) as bar:
        for name in inputs["names"]:
            found = _find(inputs["root"], name, opts, inputs, timing)
            if isinstance(found, str):
                results.skipped.append({"image": name, "reason": found})
                bar.advance()
                continue
            results.per_image.append(found.entry)
            if not found.people:
                results.nobody.append(name)
                bar.advance()
                continue
            results.add_people(name, found.people)
            chunk.append(found)
            pending += len(found.people)
            if pending >= opts.batch_size:
                _predict_chunk(chunk, model, dev, opts, results, overlays, timing)
                chunk, pending = [], 0
            bar.advance(people=len(found.people))
        _predict_chunk(chunk, model, dev, opts, results, overlays, timing)

    arrays = results.arrays()
    save_npz(out / "predictions.npz", **arrays)
    timing["total"] = time.perf_counter() - t0
    summary = _summary(inputs, results, arrays, opts, loaded, dev, overlays, timing, out)
    write_json(out / "summary.json", summary)
    return summary
