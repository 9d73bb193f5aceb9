"""Balanced pose metrics and ``ihmr eval`` for the pose task.

Per sample (3DPW protocol): MPVPE (mean vertex error), MPJPE (H36M regressor, pelvis-aligned,
14 LSP joints) and PA-MPJPE (similarity Procrustes), in mm, from :mod:`ihmr.metrics.pose`.
Which body the *predicted* pose and betas go through (``mpvpe_body``):

- ``"gendered"`` (default, the IHMR release: open-mmlab/mmhuman3d ``HumanImageDataset``): the
  predicted mesh for MPVPE comes from the body of the sample's ground-truth gender, like the
  ground-truth mesh; MPJPE / PA-MPJPE joints still come from the neutral body (as SPIN);
- ``"neutral"`` (SPIN's ``eval.py``): everything predicted comes from the neutral body.

The variant is written into ``metrics.json`` (``mpvpe_body``; ``"predicted vertices"`` when a
predictions file gives vertices, which are scored as given). Samples of unknown gender use the
neutral body either way, and where one body serves every gender (the open body) the two variants
are the same numbers. Aggregated over the split's regions (paper Sec. 4.2.2):

- ``bX.all``: mean over the non-empty regions of the per-region mean of X;
- ``bX.tail10`` / ``bX.tail5``: plain sample mean of X over the ``int(N k / 100)`` samples with the
  largest distance to the mean mesh (k = 10, 5; as released);
- ``X``: the plain sample mean.

:class:`BalancedPoseMetrics` accumulates per-sample errors batch by batch (any order), so
streaming a test set equals computing it at once. :func:`evaluate` drives a prediction source
chunk by chunk (body forward for prediction and ground truth) and writes every output.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..errors import DataError, check_choice, shape_str
from ..io import atomic_path, check_writable_dir, read_npz, save_npz, write_json, write_text
from ..metrics.balanced import BinnedMean
from ..metrics.pose import mpjpe, mpvpe, pa_mpjpe
from ..metrics.regression import tail_indices
from ..spin import crop_focal_length
from ..training import Progress
from .split import GenderedBodies, Split, as_rotmats, mean_mesh, save_split, split_from_distances

METRICS = ("MPVPE", "MPJPE", "PA-MPJPE")
TAILS = (10, 5)
MPVPE_BODIES = ("gendered", "neutral")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def per_sample_errors(pred_vertices, gt_vertices, pred_h36m, gt_h36m) -> np.ndarray:
    """(b, 3) [MPVPE, MPJPE, PA-MPJPE] in mm from metres (vertices (b, V, 3), H36M (b, 17, 3))."""
    return np.stack(
        [
            _np(mpvpe(pred_vertices, gt_vertices)),
            _np(mpjpe(pred_h36m, gt_h36m)),
            _np(pa_mpjpe(pred_h36m, gt_h36m)),
        ],
        axis=1,
    )


class BalancedPoseMetrics:
    """Streaming accumulator of per-sample errors over a :class:`~ihmr.pose.split.Split`."""

    def __init__(self, split: Split) -> None:
        self.split = split
        self.errors = np.full((len(split), len(METRICS)), np.nan)
        self.seen = np.zeros(len(split), dtype=bool)
        self.binned = BinnedMean(split.n_regions, len(METRICS))

    def update(self, index, errors) -> None:
        """Add ``errors`` (b, 3) in mm of the test samples ``index`` (b,) (or a slice)."""
        idx = np.arange(len(self.split))[index] if isinstance(index, slice) else np.asarray(index)
        errors = _np(errors)
        if errors.shape != (len(idx), len(METRICS)):
            raise DataError(
                f"errors must have shape ({len(idx)}, {len(METRICS)}), got "
                f"{shape_str(errors.shape)}"
            )
        if self.seen[idx].any() or len(np.unique(idx)) != len(idx):
            raise DataError(f"test samples {idx[self.seen[idx]][:5].tolist()} were updated twice")
        self.seen[idx] = True
        self.errors[idx] = errors
        self.binned.update(errors, self.split.region[idx])

    def compute(self) -> dict[str, Any]:
        """metrics.json content: ``bMPVPE``/``bMPJPE``/``bPA-MPJPE`` with ``all``, ``tail10``,
        ``tail5``, and the plain means ``MPVPE``/``MPJPE``/``PA-MPJPE`` (floats, mm)."""
        if not self.seen.all():
            raise DataError(
                f"predictions cover {int(self.seen.sum())} of {len(self.seen)} test "
                "samples; every test sample needs a prediction"
            )
        balanced = self.binned.balanced()
        out: dict[str, Any] = {}
        for m, name in enumerate(METRICS):
            entry = {"all": float(balanced[m])}
            for k in TAILS:
                take = tail_indices(self.split.distance, k)
                entry[f"tail{k}"] = float(self.errors[take, m].mean()) if len(take) else None
            out["b" + name] = entry
        for m, name in enumerate(METRICS):
            out[name] = float(self.errors[:, m].mean())
        return out

    def per_region(self) -> np.ndarray:
        """(R, 3) per-region mean errors, NaN for empty regions."""
        return self.binned.per_bin()


def markdown_table(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as a Markdown table (mm; lower is better)."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| metric (mm) | all (balanced) | tail 10% | tail 5% | plain mean |",
        "|---|---:|---:|---:|---:|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for name in METRICS:
        b = metrics["b" + name]
        lines.append(
            f"| {name} | {fmt(b['all'])} | {fmt(b['tail10'])} | {fmt(b['tail5'])} | "
            f"{fmt(metrics[name])} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# prediction sources: callables (start, stop) -> dict with either 'rotmat' (b, 24, 3, 3) + 'betas'
# (b, 10) (the evaluation puts them through the bodies) or 'vertices' + 'joints_h36m' (metres,
# scored as given), and where known 'cam' for saving and rendering


def h36m_regressor(body: Any):
    """(17, V) H36M joint regressor of a body (``J_regressor_h36m`` or the body's point rows)."""
    reg = getattr(body, "J_regressor_h36m", None)
    if reg is None and hasattr(body, "point_regressor"):
        reg = body.point_regressor[:17]
    if reg is None:
        raise DataError(
            "this body exposes no H36M joint regressor; vertex-only predictions need "
            "one (give pose + betas instead)"
        )
    return reg


def predictions_from_file(path: str | os.PathLike, n: int, body: Any) -> Callable:
    """Source for an ``.npz`` of predictions in test-set order: ``pose`` (N, 72) axis-angle or
    (N, 24, 3, 3) rotation matrices plus ``betas`` (N, 10), or ``vertices`` (N, V, 3) metres."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file {str(path)!r} does not exist")

    data = read_npz(path, "predictions file")
    if "pose" in data:
        if "betas" not in data:
            raise DataError(f"{str(path)!r}: 'pose' needs 'betas' (N, 10) beside it")
        rot, betas = as_rotmats(data["pose"]), torch.as_tensor(data["betas"], dtype=torch.float32)
        if len(rot) != n or tuple(betas.shape) != (n, 10):
            raise DataError(
                f"{str(path)!r}: expected {n} predictions (pose (N, 72) or "
                f"(N, 24, 3, 3), betas (N, 10)), got pose {shape_str(data['pose'].shape)} "
                f"and betas {shape_str(betas.shape)}; rows must follow the test-set order"
            )
        for k, v in (("pose", rot), ("betas", betas)):
            if not torch.isfinite(v).all():
                raise DataError(f"{str(path)!r}: {k!r} holds non-finite values")

        def source(a: int, b: int) -> dict[str, Any]:
            return {"rotmat": rot[a:b], "betas": betas[a:b]}

        return source
    if "vertices" in data:
        verts = torch.as_tensor(data["vertices"], dtype=torch.float32)
        if verts.ndim != 3 or len(verts) != n or verts.shape[2] != 3:
            raise DataError(
                f"{str(path)!r}: 'vertices' must have shape ({n}, V, 3), got "
                f"{shape_str(verts.shape)}"
            )
        reg = torch.as_tensor(h36m_regressor(body), dtype=torch.float32)
        if reg.shape[1] != verts.shape[1]:
            raise DataError(
                f"{str(path)!r}: {verts.shape[1]} vertices per mesh, but the body has "
                f"{reg.shape[1]}; evaluate with the body the method predicts"
            )

        def vsource(a: int, b: int) -> dict[str, Any]:
            return {"vertices": verts[a:b], "joints_h36m": reg @ verts[a:b]}

        return vsource
    raise DataError(f"{str(path)!r} holds {sorted(data)}; expected 'pose' + 'betas' or 'vertices'")


def predictions_from_head(head: Any, features, body: Any = None, device: Any = None) -> Callable:
    """Source running an HMR head on cached features (N, D) (a tensor or a float16 array).

    ``body`` is not needed (the evaluation puts the predicted parameters through the bodies);
    it is accepted for callers written against the older signature."""
    head = head.eval().to(device or "cpu")

    def source(a: int, b: int) -> dict[str, Any]:
        f = features[a:b]
        f = (f if torch.is_tensor(f) else torch.from_numpy(np.asarray(f))).to(device or "cpu")
        f = f.float()
        out = head(f)
        return {"rotmat": out.rotmat, "betas": out.betas, "cam": out.cam}

    return source


def check_mpvpe_body(mpvpe_body: str) -> str:
    check_choice(mpvpe_body, list(MPVPE_BODIES), "mpvpe_body")
    return mpvpe_body


def predicted_meshes(pred: dict[str, Any], bodies: GenderedBodies, gender, mpvpe_body: str):
    """``(vertices (b, V, 3), joints_h36m (b, 17, 3))`` in metres of one chunk of predictions.

    Vertices come from the body named by ``mpvpe_body`` (``"gendered"``: the body of each
    sample's ground-truth ``gender`` (b,) codes; ``"neutral"``); the H36M joints always come from
    the neutral body (SPIN's protocol for MPJPE / PA-MPJPE, kept by the IHMR release). A source
    that gives vertices is scored as given."""
    if "vertices" in pred:
        return pred["vertices"], pred["joints_h36m"]
    rot, betas = pred["rotmat"], pred["betas"]
    if mpvpe_body == "neutral" or bodies.single:
        out = bodies.neutral(betas=betas, pose=rot)
        return out.vertices, out.joints_h36m
    verts, _ = bodies.gt_forward(rot, betas, gender)
    joints_only = getattr(bodies.neutral, "joints_only", None)  # no vertex tensor needed here
    neutral = joints_only(betas, rot) if joints_only else bodies.neutral(betas=betas, pose=rot)
    return verts, neutral.joints_h36m


# ---------------------------------------------------------------------------------------------


def run_metrics(
    source: Callable,
    labels,
    split: Split | None,
    bodies: GenderedBodies,
    chunk: int = 1024,
    keep: Iterable[str] = (),
    progress: bool = False,
    device: Any = None,
    mpvpe_body: str = "gendered",
):
    """Stream the test set through ``source``; returns ``(BalancedPoseMetrics, kept)`` where
    ``kept`` maps each requested prediction key (e.g. 'rotmat') to its (N, ...) array.
    ``mpvpe_body`` picks the body of the predicted meshes (:func:`predicted_meshes`).

    With ``split=None`` the vertex-distance split is built in the same pass from the
    ground-truth meshes already computed for the errors (one ground-truth forward, not two);
    the result's ``acc.split`` is then the new split.
    """
    check_mpvpe_body(mpvpe_body)
    n = len(labels)
    if split is not None and len(split) != n:
        raise DataError(
            f"the split has {len(split)} samples but the test labels {n}; make the "
            "split from the same test file"
        )
    errors = np.empty((n, len(METRICS)))
    dist = np.empty(n) if split is None else None
    kept: dict[str, list] = {k: [] for k in keep}
    gt_rot = as_rotmats(labels.pose)
    device = device or "cpu"
    with Progress(n, "evaluating", enabled=progress) as bar, torch.no_grad():
        ref = mean_mesh(bodies.neutral).to(device) if split is None else None
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            pred = source(a, b)
            gender = labels.gender[a:b].to(device)
            gt_v, gt_j = bodies.gt_forward(
                gt_rot[a:b].to(device), labels.betas[a:b].to(device), gender
            )
            pv, pj = predicted_meshes(pred, bodies, gender, mpvpe_body)
            pv, pj = pv.to(gt_v.device, gt_v.dtype), pj.to(gt_v.device, gt_v.dtype)
            errors[a:b] = per_sample_errors(pv, gt_v, pj, gt_j)
            if dist is not None:
                dist[a:b] = _np((gt_v - ref.to(gt_v.dtype)).norm(dim=-1).mean(-1) * 1000.0)
            for k in kept:
                if k in pred:
                    kept[k].append(_np(pred[k]).astype(np.float32))
            bar.advance(b - a)
    if split is None:
        split = split_from_distances(dist, body=bodies.name)
    acc = BalancedPoseMetrics(split)
    acc.update(slice(0, n), errors)
    return acc, {k: np.concatenate(v) for k, v in kept.items() if v}


def write_outputs(
    out_dir: str | os.PathLike,
    acc: BalancedPoseMetrics,
    info: dict[str, Any],
    predictions: dict[str, np.ndarray] | None = None,
    protocol: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write metrics.json, metrics.md, per_sample.npz, per_region.png, eval_info.json
    (and predictions.npz when given). ``protocol`` entries (e.g. ``mpvpe_body``) are written into
    metrics.json beside the numbers. Returns the metrics dict."""
    out = check_writable_dir(out_dir)
    metrics = {**acc.compute(), **(protocol or {})}
    e = acc.errors
    save_npz(
        out / "per_sample.npz",
        distance=acc.split.distance,
        region=acc.split.region,
        mpvpe=e[:, 0],
        mpjpe=e[:, 1],
        pa_mpjpe=e[:, 2],
    )
    if predictions:
        save_npz(out / "predictions.npz", **predictions)
    plot_per_region(acc, out / "per_region.png")
    write_text(out / "metrics.md", markdown_table(metrics, info.get("title", "")))
    write_json(out / "eval_info.json", info)
    write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    return metrics


def plot_per_region(acc: BalancedPoseMetrics, path: str | os.PathLike) -> Path:
    """Per-region mean errors (lines) over the test counts (bars), against the distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = acc.split
    centres = 0.5 * (s.edges[:-1] + s.edges[1:])
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    ax2 = ax.twinx()
    ax2.bar(centres, s.counts, width=s.edges[1] - s.edges[0], color="0.85")
    ax2.set_yscale("log")
    ax2.set_ylabel("test samples")
    for m, name in enumerate(METRICS):
        ax.plot(centres, acc.per_region()[:, m], ".-", ms=3, label=name)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel(f"distance to the mean mesh ({s.units})")
    ax.set_ylabel("per-region mean error (mm)")
    ax.legend(frameon=False, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def render_rarest(
    out_dir: str | os.PathLike,
    split: Split,
    labels,
    predictions: dict,
    bodies: GenderedBodies,
    k: int = 4,
    size: int = 256,
) -> str:
    """Comparison strips (ground truth | prediction, front and side) of the k test samples
    farthest from the mean mesh, when :mod:`ihmr.render` has an offscreen GL backend here.
    Renders are optional output: any problem is returned as a status line, never raised."""
    if "rotmat" not in predictions or "betas" not in predictions:
        return "renders skipped: the predictions hold no pose parameters"
    try:
        from ..render import (
            MeshRenderer,
            backend_problem,
            comparison_strip,
            fit_translation,
            render_mesh,
            save_png,
        )
    except Exception as exc:
        return f"renders skipped: ihmr.render is unavailable ({exc.__class__.__name__}: {exc})"
    problem = backend_problem()
    if problem:
        return f"renders skipped: {problem}"

    idx = np.argsort(-split.distance, kind="stable")[:k]
    folder = Path(out_dir) / "renders"
    try:
        with torch.no_grad():
            gt_v, _ = bodies.gt_forward(
                as_rotmats(labels.pose[idx]), labels.betas[idx], labels.gender[idx]
            )
            pv = bodies.neutral(
                betas=torch.as_tensor(predictions["betas"][idx]),
                pose=torch.as_tensor(predictions["rotmat"][idx]),
            ).vertices
        faces = np.asarray(bodies.neutral.faces)
        focal = crop_focal_length(size)
        renderer = MeshRenderer(size, size)
        try:
            for rank, i in enumerate(idx):
                panels = []
                for side in (False, True):
                    for v in (gt_v[rank].numpy(), pv[rank].numpy()):
                        t = fit_translation(v, focal, (size, size))
                        panels.append(
                            render_mesh(
                                v,
                                faces,
                                translation=t,
                                focal_length=focal,
                                size=size,
                                side=side,
                                renderer=renderer,
                            )
                        )
                strip = comparison_strip(
                    panels, ["ground truth", "prediction", "GT side", "pred. side"]
                )
                save_png(folder / f"rare_{rank:02d}_sample{int(i):06d}.png", strip)
        finally:
            renderer.close()
    except Exception as exc:
        return f"renders skipped: {exc.__class__.__name__}: {exc}"
    return f"rendered the {len(idx)} rarest samples to {folder}"


def evaluate(
    source: Callable,
    labels,
    split: Split | None,
    bodies: GenderedBodies,
    out_dir: str | os.PathLike,
    info: dict[str, Any] | None = None,
    chunk: int = 1024,
    save_predictions: bool = False,
    renders: int = 4,
    progress: bool = False,
    device: Any = None,
    mpvpe_body: str = "gendered",
):
    """Run the metrics and write all outputs; returns ``(metrics, info)``.

    ``split=None`` builds the vertex-distance split in the same pass and saves it as
    ``split.npz`` in ``out_dir``. ``mpvpe_body``: see the module docstring; written into
    metrics.json."""
    t0 = time.perf_counter()
    acc, kept = run_metrics(
        source,
        labels,
        split,
        bodies,
        chunk,
        ("rotmat", "betas", "cam"),
        progress,
        device,
        mpvpe_body,
    )
    info = dict(info or {})
    if split is None:
        split = acc.split
        info["split"] = str(save_split(Path(out_dir) / "split.npz", split))
    used = "predicted vertices" if "rotmat" not in kept else mpvpe_body
    info.update(
        n_samples=len(labels),
        n_regions=split.n_regions,
        non_empty_regions=int((split.counts > 0).sum()),
        split_metric=split.metric,
        body=bodies.name,
        one_body_for_all_genders=bodies.single,
        mpvpe_body=used,
        seconds=round(time.perf_counter() - t0, 3),
    )
    if renders:
        info["renders"] = render_rarest(out_dir, split, labels, kept, bodies, renders)
    preds = None
    if save_predictions and "rotmat" in kept:
        preds = {("pose" if k == "rotmat" else k): v for k, v in kept.items()}
    metrics = write_outputs(out_dir, acc, info, preds, {"mpvpe_body": used})
    return metrics, info
