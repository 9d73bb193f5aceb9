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

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(images: str | os.PathLike, exclude: str | os.PathLike | None = None
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
    return {n: (v if seen[v] == 1 else n.replace("/", "__").replace(".", "_"))
            for n, v in plain.items()}


def run_model(model: Any, crops: np.ndarray, device: Any, batch_size: int,
              timing: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Backbone + head on normalised crops (B, 3, 224, 224) -> numpy ``rotmat``, ``pose``
    (axis-angle), ``betas``, ``cam``, in sub-batches of ``batch_size`` on ``device``."""
    import torch

    from ..geometry import matrix_to_axis_angle

    outs: dict[str, list] = {"rotmat": [], "pose": [], "betas": [], "cam": []}
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for a in range(0, len(crops), batch_size):
            x = torch.from_numpy(crops[a:a + batch_size]).to(device, non_blocking=True)
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
            outs["pose"].append(matrix_to_axis_angle(out.rotmat.double()).reshape(b, 72)
                                .float().cpu().numpy())
            outs["betas"].append(out.betas.float().cpu().numpy())
            outs["cam"].append(out.cam.float().cpu().numpy())
    empty = {"rotmat": (0, 24, 3, 3), "pose": (0, 72), "betas": (0, 10), "cam": (0, 3)}
    return {k: np.concatenate(v) if v else np.zeros(empty[k], np.float32) for k, v in outs.items()}


def render_people(renderer: Any, image: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                  cams: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                  max_side: int = 1024) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Front overlay and side view of several people in one image.

    ``vertices`` (K, V, 3), ``cams`` (K, 3), ``centers`` (K, 2), ``scales`` (K,). The image is
    shrunk to at most ``max_side`` px (focal lengths and centres follow). Returns ``(front,
    side, skipped)`` with uint8 (H, W, 3) images and the indices of people not drawn (camera
    scale <= 0: such a body would sit behind the camera).
    """
    import cv2

    from ..render.mesh import side_view
    from ..spin import crop_intrinsics, weak_perspective_to_translation

    h, w = image.shape[:2]
    r = min(1.0, max_side / max(h, w))
    if r < 1.0:
        image = cv2.resize(image, (max(1, round(w * r)), max(1, round(h * r))),
                           interpolation=cv2.INTER_AREA)
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
        front = renderer.render(vertices[k], faces, t, focal_length=f, principal_point=pp,
                                image=front)
        side = renderer.render(side_view(vertices[k]), faces, t, focal_length=f,
                               principal_point=pp, image=side)
    return front, side, sorted(skipped)


def _plain(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def predict_images(images: str | os.PathLike, checkpoint: str | os.PathLike,
                   out: str | os.PathLike, *, backbone: str | os.PathLike | None = None,
                   boxes: str | os.PathLike | None = None,
                   centers: str | os.PathLike | None = None, detector: str = "auto",
                   detector_model: str | os.PathLike | None = None, person_class: int = 0,
                   score_threshold: float = 0.3, min_size: float = 0.0, max_people: int = 10,
                   fallback: str = "none", show_boxes: bool = False,
                   device: str = "auto", batch_size: int = 16, render: bool = True,
                   smpl_dir: str | os.PathLike | None = None,
                   allow_mismatch: bool = False, progress: bool = False,
                   max_render_side: int = 1024) -> dict[str, Any]:
    """Predict bodies for every image under ``images``; write everything to ``out``.

    Args:
        images: an image folder (searched recursively) or one image file.
        checkpoint: SPIN ``model_checkpoint.pt``, an ``ihmr train`` head or an export
            (:func:`ihmr.pose.checkpoints.load_model`); ``backbone`` for a head.
        boxes: JSON/CSV of user boxes (:func:`ihmr.pose.detect.read_boxes`); centers: SPIN
            ``.npz`` with imgname/center/scale. Images without an entry go to ``detector``:
            ``"auto"`` (OpenCV's cascades + HOG), ``"hog"``, ``"dnn"`` (``detector_model``, a
            local ONNX person detector; ``person_class`` its class index of people) or
            ``"none"`` (:func:`ihmr.pose.detectors.build_detector`).
        score_threshold, min_size, max_people: detections kept: score >= ``score_threshold``
            (in [0, 1]), box at least ``min_size`` px tall, at most ``max_people`` per image.
        fallback: ``"none"`` (an image where nobody is found is listed in ``nobody`` and gets
            no row) or ``"whole-image"`` (one person spanning the image, SPIN's demo default).
        show_boxes: draw the boxes with their source and score on the overlay.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        batch_size: crops per forward pass.
        render: write the overlay and side-view PNGs (needs an offscreen OpenGL backend; when
            none is found, predictions are still written and the summary says why).
        smpl_dir: SMPL folder for rendering (default: configured SMPL, else the open body).
    Returns:
        The summary written to ``summary.json``.
    """
    import cv2
    import torch

    from ..io import check_writable_dir, save_npz, write_json
    from ..io import read_image
    from ..render.strip import save_png
    from ..runs import Progress, resolve_device
    from . import detect as D
    from .detectors import DetectSettings, build_detector
    from .show import draw_boxes
    from .checkpoints import load_model
    from .crop import crop_image, normalise

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if fallback not in D.FALLBACKS:
        raise ConfigError(f"--fallback must be one of {list(D.FALLBACKS)}, got {fallback!r}")
    settings = DetectSettings(score_threshold=score_threshold, min_size=min_size,
                              max_people=max_people)
    out = Path(out)
    root, names = list_images(images, exclude=out)
    if not names:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {str(images)!r}")
    stems = overlay_stems(names)
    user_boxes = D.read_boxes(boxes) if boxes is not None else None
    user_centers = D.read_center_scale(centers) if centers is not None else None
    finder = build_detector(detector, settings, detector_model, person_class)
    dev = resolve_device(device)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = load_model(checkpoint, backbone, allow_mismatch=allow_mismatch)
    model = loaded.model.to(dev)
    timing["load"] = time.perf_counter() - t0
    out = check_writable_dir(out)  # after every input check: a failed start leaves no folder

    render_note = None
    body = renderer = None
    if render:
        from ..render import backend_problem, render_available

        if render_available():
            from ..body import load_body
            from ..render.mesh import MeshRenderer

            body = load_body("neutral", smpl_dir)
            renderer = MeshRenderer()
        else:
            render_note = f"overlays skipped: {backend_problem()}"

    rows: dict[str, list] = {k: [] for k in ("center", "scale", "bbox", "confidence", "imgname",
                                             "source", "evidence", "person")}
    preds: dict[str, list] = {"rotmat": [], "pose": [], "betas": [], "cam": []}
    per_image: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    nobody: list[str] = []
    for k in ("read_detect_crop", "detect", "backbone", "head", "render"):
        timing.setdefault(k, 0.0)

    def flush(chunk: list[tuple]) -> None:
        if not chunk:
            return
        crops = np.stack([c for _, _, _, cs in chunk for c in cs])
        res = run_model(model, crops, dev, batch_size, timing)
        for key in preds:
            preds[key].append(res[key])
        a = 0
        for entry, image, people, _ in chunk:
            n, name = len(people), entry["image"]
            if renderer is None and show_boxes:
                t = time.perf_counter()
                r = min(1.0, max_render_side / max(image.shape[:2]))
                small = image if r == 1.0 else cv2.resize(
                    image, (max(1, round(image.shape[1] * r)), max(1, round(image.shape[0] * r))),
                    interpolation=cv2.INTER_AREA)
                entry["overlay"] = str(save_png(out / "overlays" / f"{stems[name]}.png",
                                                boxes_over(small, image, people)))
                timing["render"] += time.perf_counter() - t
            if renderer is not None:
                t = time.perf_counter()
                try:
                    with torch.no_grad():
                        v = body(torch.from_numpy(res["betas"][a:a + n]),
                                 torch.from_numpy(res["rotmat"][a:a + n])).vertices.numpy()
                    front, side, bad = render_people(
                        renderer, image, v, body.faces, res["cam"][a:a + n],
                        np.array([p.center for p in people]), np.array([p.scale for p in people]),
                        max_render_side)
                    if show_boxes:
                        front = boxes_over(front, image, people)
                    stem = stems[name]
                    entry["overlay"] = str(save_png(out / "overlays" / f"{stem}.png", front))
                    entry["side"] = str(save_png(out / "overlays" / f"{stem}_side.png", side))
                    if bad:
                        entry["not_drawn"] = bad
                except Exception as exc:  # noqa: BLE001 - one failed render must not stop the run
                    entry["render_error"] = f"{type(exc).__name__}: {exc}"
                timing["render"] += time.perf_counter() - t
            a += n
        chunk.clear()

    def boxes_over(shown: np.ndarray, image: np.ndarray, people: list) -> np.ndarray:
        scale = (shown.shape[1] / image.shape[1], shown.shape[0] / image.shape[0])
        return draw_boxes(shown, [p.bbox for p in people], [p.source for p in people],
                          [p.confidence for p in people], scale)

    chunk: list[tuple] = []
    pending = 0
    with Progress(len(names), "predict", enabled=progress) as bar:
        for name in names:
            t = time.perf_counter()
            try:
                image = read_image(root / name)
            except (OSError, ValueError) as exc:
                skipped.append({"image": name, "reason": str(exc)})
                bar.advance()
                continue
            try:
                td = time.perf_counter()
                people = D.find_people(image, name, boxes=user_boxes, centers=user_centers,
                                       detector=finder, fallback=fallback)
                timing["detect"] += time.perf_counter() - td
                crops = [normalise(crop_image(image, p.center, p.scale)) for p in people]
            except (ValueError, cv2.error) as exc:  # a bad box of this image: report, go on
                skipped.append({"image": name, "reason": str(exc) if isinstance(exc, DataError)
                                else f"{type(exc).__name__}: {exc}"})
                bar.advance()
                continue
            by: dict[str, int] = {}
            for p in people:
                by[p.source] = by.get(p.source, 0) + 1
            entry = {"image": name, "height": image.shape[0], "width": image.shape[1],
                     "people": len(people), "by_source": by,
                     "source": people[0].source if people else None,
                     "confidence": [_plain(p.confidence) for p in people]}
            timing["read_detect_crop"] += time.perf_counter() - t
            if not people:
                nobody.append(name)
                per_image.append(entry)
                bar.advance()
                continue
            for i, p in enumerate(people):
                rows["center"].append(p.center)
                rows["scale"].append(p.scale)
                rows["bbox"].append(p.bbox)
                rows["confidence"].append(p.confidence)
                rows["imgname"].append(name)
                rows["source"].append(p.source)
                rows["evidence"].append(p.evidence)
                rows["person"].append(i)
            per_image.append(entry)
            chunk.append((entry, image, people, crops))
            pending += len(people)
            if pending >= batch_size:
                flush(chunk)
                pending = 0
            bar.advance(people=len(people))
        flush(chunk)

    n = len(rows["imgname"])
    empty = {"rotmat": (0, 24, 3, 3), "pose": (0, 72), "betas": (0, 10), "cam": (0, 3)}
    arrays = {k: (np.concatenate(v) if v else np.zeros(empty[k], np.float32))
              for k, v in preds.items()}
    arrays.update(
        center=np.asarray(rows["center"], np.float64).reshape(n, 2),
        scale=np.asarray(rows["scale"], np.float64).reshape(n),
        bbox=np.asarray(rows["bbox"], np.float64).reshape(n, 4),
        confidence=np.asarray(rows["confidence"], np.float64).reshape(n),
        imgname=np.asarray(rows["imgname"], dtype=str).reshape(n),
        source=np.asarray(rows["source"], dtype=str).reshape(n),
        evidence=np.asarray(rows["evidence"], dtype=str).reshape(n),
        person=np.asarray(rows["person"], np.int64).reshape(n))
    save_npz(out / "predictions.npz", **arrays)
    timing["total"] = time.perf_counter() - t0
    counts = {s: int(np.sum(arrays["source"] == s)) for s in D.SOURCES}
    known = set(names) | {Path(x).name for x in names}
    unmatched = {f: sorted(k for k in (table or {}) if k not in known)
                 for f, table in (("boxes", user_boxes), ("centers", user_centers))}
    summary = {
        "images_dir": str(root), "images": len(names), "images_done": len(per_image),
        "people": n, "people_by_source": counts, "nobody": nobody, "skipped": skipped,
        "unmatched_entries": {k: v for k, v in unmatched.items() if v},
        "checkpoint": {"kind": loaded.kind, **{k: (str(v) if isinstance(v, Path) else v)
                                               for k, v in loaded.info.items()}},
        "device": str(dev), "batch_size": batch_size, "detector": detector,
        "detector_model": str(detector_model) if detector_model is not None else None,
        "detect_settings": {"score_threshold": score_threshold, "min_size": min_size,
                            "max_people": max_people, "fallback": fallback},
        "detector_notes": list(getattr(finder, "notes", [])),
        "render": render_note or (renderer is not None), "show_boxes": show_boxes,
        "body": getattr(body, "name", None), "seconds": {k: round(v, 4) for k, v in timing.items()},
        "predictions": str(out / "predictions.npz"), "per_image": per_image,
    }
    write_json(out / "summary.json", summary)
    return summary
