"""Balanced pose metrics: hand computation, streaming == one-shot, tails, and the eval outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.pose.evaluate import BalancedPoseMetrics, markdown_table
from ihmr.pose.split import split_from_distances

KEYS = {"bMPVPE", "bMPJPE", "bPA-MPJPE", "MPVPE", "MPJPE", "PA-MPJPE"}


def _hand(d, err, n_regions):
    """Straight from the definition with Python lists."""
    lo, hi = min(d), max(d)
    delta = (hi - lo) / n_regions
    groups = {}
    for x, e in zip(d, err, strict=True):
        groups.setdefault(int((x - lo) / delta - 0.001), []).append(e)
    balanced = sum(sum(g) / len(g) for g in groups.values()) / len(groups)
    ranked = [e for _, e in sorted(zip(d, err, strict=True), key=lambda t: -t[0])]
    tail = lambda k: sum(ranked[: int(len(d) * k / 100)]) / int(len(d) * k / 100)  # noqa: E731
    return balanced, tail(10), tail(5), sum(err) / len(err)


def test_against_hand_computation(rng):
    d = rng.gamma(1.5, 20.0, 60)
    err = rng.uniform(20, 200, (60, 3))
    acc = BalancedPoseMetrics(split_from_distances(d, 7))
    acc.update(np.arange(60), err)
    m = acc.compute()
    assert set(m) == KEYS
    for j, name in enumerate(["MPVPE", "MPJPE", "PA-MPJPE"]):
        b, t10, t5, mean = _hand(list(d), list(err[:, j]), 7)
        assert m["b" + name]["all"] == pytest.approx(b, rel=1e-12)
        assert m["b" + name]["tail10"] == pytest.approx(t10, rel=1e-12)
        assert m["b" + name]["tail5"] == pytest.approx(t5, rel=1e-12)
        assert m[name] == pytest.approx(mean, rel=1e-12)
    # the balanced mean differs from the plain mean on imbalanced data
    assert abs(m["bMPVPE"]["all"] - m["MPVPE"]) > 1e-3


def test_streaming_equals_one_shot(rng):
    d = rng.normal(50, 10, 500)
    err = rng.uniform(0, 100, (500, 3))
    split = split_from_distances(d)
    one = BalancedPoseMetrics(split)
    one.update(slice(0, 500), err)
    stream = BalancedPoseMetrics(split)
    perm = rng.permutation(500)
    for chunk in np.array_split(perm, 7):
        stream.update(chunk, err[chunk])
    a, b = one.compute(), stream.compute()
    for k in KEYS:
        if k.startswith("b"):
            for t in ("all", "tail10", "tail5"):
                assert a[k][t] == pytest.approx(b[k][t], rel=1e-12)
        else:
            assert a[k] == pytest.approx(b[k], rel=1e-12)
    np.testing.assert_allclose(one.per_region(), stream.per_region(), rtol=1e-12)


def test_missing_and_duplicate_samples(rng):
    acc = BalancedPoseMetrics(split_from_distances(rng.uniform(0, 1, 10), 3))
    acc.update(np.arange(5), np.ones((5, 3)))
    with pytest.raises(DataError, match="cover 5 of 10"):
        acc.compute()
    with pytest.raises(DataError, match="twice"):
        acc.update(np.array([4, 5]), np.ones((2, 3)))
    with pytest.raises(DataError, match=r"\(2, 3\)"):
        acc.update(np.array([6, 7]), np.ones((2, 2)))


def test_markdown_table():
    m = {
        "b" + k: {"all": 1.0, "tail10": 2.0, "tail5": None} for k in ("MPVPE", "MPJPE", "PA-MPJPE")
    }
    m.update(MPVPE=3.0, MPJPE=4.0, **{"PA-MPJPE": 5.0})
    md = markdown_table(m, "demo")
    assert "| MPVPE | 1.00 | 2.00 | n/a | 3.00 |" in md and md.startswith("### demo")


# ----------------------------------------------------------------------------- end to end
H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def _naive_errors(pv, gv, pj, gj):
    """Independent numpy per-sample MPVPE, MPJPE, PA-MPJPE (mm)."""
    out = []
    for a, b, p, g in zip(pv, gv, pj, gj, strict=True):
        mpvpe = np.linalg.norm(a - b, axis=1).mean() * 1000
        p14, g14 = (p - p[0])[H36M_TO_J14], (g - g[0])[H36M_TO_J14]
        mpjpe = np.linalg.norm(p14 - g14, axis=1).mean() * 1000
        mp, mg = p14.mean(0), g14.mean(0)
        x, y = p14 - mp, g14 - mg
        u, s, vt = np.linalg.svd(x.T @ y)
        sign = np.sign(np.linalg.det(vt.T @ u.T))
        dmat = np.diag([1, 1, sign])
        r = vt.T @ dmat @ u.T
        scale = np.trace(dmat @ np.diag(s)) / (x**2).sum()
        aligned = scale * x @ r.T + mg
        pa = np.linalg.norm(aligned - g14, axis=1).mean() * 1000
        out.append([mpvpe, mpjpe, pa])
    return np.array(out)


def test_evaluate_predictions_file(tmp_path, rng, toy_body):
    pytest.importorskip("ihmr.metrics.pose")
    from ihmr.pose.evaluate import evaluate, predictions_from_file
    from ihmr.pose.spin_data import read_spin_npz
    from ihmr.pose.split import GenderedBodies, make_split

    from .helpers import ToyBody, rodrigues, spin_arrays

    arrs = spin_arrays(50, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    labels = read_spin_npz(tmp_path / "3dpw_test.npz")
    bodies = GenderedBodies(toy_body, ToyBody(1), ToyBody(2))
    split = make_split(labels, bodies, n_regions=10)
    pose = arrs["pose"] + rng.normal(0, 0.3, (50, 72))
    betas = arrs["shape"] + rng.normal(0, 0.5, (50, 10))
    np.savez(tmp_path / "pred.npz", pose=pose, betas=betas)
    src = predictions_from_file(tmp_path / "pred.npz", 50, toy_body)
    metrics, info = evaluate(src, labels, split, bodies, tmp_path / "out", chunk=16, renders=0)
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(on_disk) == KEYS | {"mpvpe_body"} and on_disk == metrics
    assert on_disk["mpvpe_body"] == "gendered" == info["mpvpe_body"]
    ps = np.load(tmp_path / "out" / "per_sample.npz")
    assert set(ps.files) == {"distance", "region", "mpvpe", "mpjpe", "pa_mpjpe"}
    # independent recomputation of the per-sample errors
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    pred = toy_body(betas=t(betas), pose=rodrigues(t(pose).reshape(50, 24, 3)))
    gv, gj, pv = [], [], []
    by_code = {-1: "neutral", 0: "male", 1: "female"}  # SPIN's 3DPW gender codes
    for i in range(50):
        body = bodies.by_gender[by_code[int(labels.gender[i])]]
        o = body(
            betas=t(arrs["shape"][i : i + 1]), pose=rodrigues(t(arrs["pose"][i]).reshape(1, 24, 3))
        )
        gv.append(o.vertices[0].numpy())
        gj.append(o.joints_h36m[0].numpy())
        # the IHMR release's MPVPE: the predicted mesh from the same gendered body
        pv.append(
            body(betas=t(betas[i : i + 1]), pose=rodrigues(t(pose[i]).reshape(1, 24, 3)))
            .vertices[0]
            .numpy()
        )
    want = _naive_errors(np.array(pv), np.array(gv), pred.joints_h36m.numpy(), np.array(gj))
    np.testing.assert_allclose(ps["mpvpe"], want[:, 0], rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ps["mpjpe"], want[:, 1], rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ps["pa_mpjpe"], want[:, 2], rtol=1e-3, atol=1e-2)
    assert metrics["MPVPE"] == pytest.approx(want[:, 0].mean(), rel=1e-3)
    # balanced: mean over the non-empty regions of the per-region mean; tails: the 10% / 5%
    # (5 / 2 samples) farthest from the mean mesh, plain means
    regions = [want[split.region == r, 0].mean() for r in np.unique(split.region)]
    far = np.argsort(-split.distance, kind="stable")
    assert metrics["bMPVPE"]["all"] == pytest.approx(np.mean(regions), rel=1e-3)
    assert metrics["bMPVPE"]["tail10"] == pytest.approx(want[far[:5], 0].mean(), rel=1e-3)
    assert metrics["bMPVPE"]["tail5"] == pytest.approx(want[far[:2], 0].mean(), rel=1e-3)
    assert metrics["bMPVPE"]["all"] != pytest.approx(metrics["MPVPE"], rel=1e-3)
    md = (tmp_path / "out" / "metrics.md").read_text()
    assert f"| MPVPE | {metrics['bMPVPE']['all']:.2f} |" in md and f"{metrics['MPVPE']:.2f} |" in md
    assert json.loads((tmp_path / "out" / "eval_info.json").read_text())["n_samples"] == 50
    assert (tmp_path / "out" / "per_region.png").stat().st_size > 1000
    # perfect predictions (rotation matrices this time) give zero error
    gt_rot = rodrigues(t(arrs["pose"]).reshape(50, 24, 3)).numpy()
    gt_body_pred = dict(pose=gt_rot, betas=arrs["shape"])
    np.savez(tmp_path / "perfect.npz", **gt_body_pred)
    same = GenderedBodies(toy_body)
    m0, _ = evaluate(
        predictions_from_file(tmp_path / "perfect.npz", 50, toy_body),
        labels,
        split,
        same,
        tmp_path / "out0",
        renders=0,
    )
    assert m0["bMPVPE"]["all"] < 1e-3 and m0["PA-MPJPE"] < 1e-2


def test_bad_predictions_files(tmp_path, toy_body):
    from ihmr.pose.evaluate import predictions_from_file

    np.savez(tmp_path / "a.npz", pose=np.zeros((4, 72)))
    with pytest.raises(DataError, match="'betas'"):
        predictions_from_file(tmp_path / "a.npz", 4, toy_body)
    np.savez(tmp_path / "b.npz", pose=np.zeros((3, 72)), betas=np.zeros((3, 10)))
    with pytest.raises(DataError, match="expected 4 predictions"):
        predictions_from_file(tmp_path / "b.npz", 4, toy_body)
    np.savez(tmp_path / "c.npz", vertices=np.zeros((4, 5, 3)))
    with pytest.raises(DataError, match="5 vertices per mesh"):
        predictions_from_file(tmp_path / "c.npz", 4, toy_body)
    np.savez(tmp_path / "d.npz", foo=np.zeros(3))
    with pytest.raises(DataError, match="expected 'pose'"):
        predictions_from_file(tmp_path / "d.npz", 4, toy_body)


@pytest.mark.render
def test_render_rarest(tmp_path, rng, toy_body):
    from ihmr.pose.evaluate import render_rarest
    from ihmr.pose.spin_data import read_spin_npz
    from ihmr.pose.split import GenderedBodies

    from .helpers import spin_arrays

    arrs = spin_arrays(12, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    labels = read_spin_npz(tmp_path / "3dpw_test.npz")
    split = split_from_distances(rng.uniform(0, 1, 12), 4)
    preds = {"rotmat": labels.rotmats().numpy(), "betas": arrs["shape"].astype(np.float32)}
    try:
        from ihmr.render import backend_problem

        problem = backend_problem()
    except ImportError as exc:
        problem = str(exc)
    status = render_rarest(tmp_path, split, labels, preds, GenderedBodies(toy_body), k=2, size=64)
    if problem:
        assert status.startswith("renders skipped")
        pytest.skip(f"no offscreen rendering here: {problem}")
    files = sorted((tmp_path / "renders").glob("rare_*.png"))
    top = int(np.argmax(split.distance))
    assert len(files) == 2 and f"sample{top:06d}" in files[0].name, status
    assert files[0].read_bytes()[:4] == b"\x89PNG"
    # no pose parameters: a status line, no exception
    assert render_rarest(tmp_path, split, labels, {}, GenderedBodies(toy_body)).startswith(
        "renders skipped"
    )


def test_mpvpe_body_gendered_vs_neutral(tmp_path, rng, toy_body):
    """Male and female bodies that differ: the release's MPVPE puts the *predicted* pose and betas
    through the ground-truth gender's body; the neutral variant through the neutral body. Joints
    (MPJPE, PA-MPJPE) come from the neutral body in both."""
    from ihmr.pose.evaluate import evaluate, predictions_from_file
    from ihmr.pose.spin_data import read_spin_npz
    from ihmr.pose.split import GenderedBodies, make_split

    from .helpers import ToyBody, rodrigues, spin_arrays

    n = 24
    arrs = spin_arrays(n, rng, "3dpw")
    arrs["gender"] = np.array(["m", "f"] * (n // 2))
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    labels = read_spin_npz(tmp_path / "3dpw_test.npz")
    male, female = ToyBody(1), ToyBody(2)
    bodies = GenderedBodies(toy_body, male, female)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    probe = rodrigues(t(arrs["pose"][:1]).reshape(1, 24, 3))
    assert (
        male(t(arrs["shape"][:1]), probe).vertices - female(t(arrs["shape"][:1]), probe).vertices
    ).abs().max() > 0.01
    split = make_split(labels, bodies, n_regions=5)
    pose = arrs["pose"] + rng.normal(0, 0.2, (n, 72))
    betas = arrs["shape"] + rng.normal(0, 0.3, (n, 10))
    np.savez(tmp_path / "pred.npz", pose=pose, betas=betas)

    def run(variant):
        src = predictions_from_file(tmp_path / "pred.npz", n, toy_body)
        out = tmp_path / variant
        m, _ = evaluate(src, labels, split, bodies, out, chunk=7, renders=0, mpvpe_body=variant)
        assert json.loads((out / "metrics.json").read_text())["mpvpe_body"] == variant
        return m, np.load(out / "per_sample.npz")

    gendered, ps_g = run("gendered")
    neutral, ps_n = run("neutral")
    # independent per-sample computation, one sample at a time
    want_g, want_n = [], []
    for i in range(n):
        body = male if arrs["gender"][i] == "m" else female
        gt = body(t(arrs["shape"][i : i + 1]), rodrigues(t(arrs["pose"][i]).reshape(1, 24, 3)))
        rot = rodrigues(t(pose[i]).reshape(1, 24, 3))
        pg = body(t(betas[i : i + 1]), rot).vertices
        pn = toy_body(t(betas[i : i + 1]), rot).vertices
        want_g.append(float((pg - gt.vertices).norm(dim=-1).mean()) * 1000)
        want_n.append(float((pn - gt.vertices).norm(dim=-1).mean()) * 1000)
    np.testing.assert_allclose(ps_g["mpvpe"], want_g, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ps_n["mpvpe"], want_n, rtol=1e-4, atol=1e-3)
    assert np.abs(np.array(want_g) - np.array(want_n)).min() > 1.0  # the variants really differ
    np.testing.assert_allclose(ps_g["mpjpe"], ps_n["mpjpe"], rtol=1e-6)
    np.testing.assert_allclose(ps_g["pa_mpjpe"], ps_n["pa_mpjpe"], rtol=1e-6)
    assert gendered["MPVPE"] == pytest.approx(np.mean(want_g), rel=1e-4)
    assert neutral["MPVPE"] == pytest.approx(np.mean(want_n), rel=1e-4)
    with pytest.raises(Exception, match="mpvpe_body"):
        run("female")


def test_one_body_for_all_genders_gives_identical_variants(tmp_path, rng, toy_body):
    from ihmr.pose.evaluate import evaluate, predictions_from_file
    from ihmr.pose.spin_data import read_spin_npz
    from ihmr.pose.split import GenderedBodies

    from .helpers import spin_arrays

    arrs = spin_arrays(12, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    labels = read_spin_npz(tmp_path / "3dpw_test.npz")
    np.savez(tmp_path / "pred.npz", pose=arrs["pose"] + 0.1, betas=arrs["shape"])
    bodies = GenderedBodies(toy_body)  # like the open body: one body for every gender
    res = {}
    for v in ("gendered", "neutral"):
        src = predictions_from_file(tmp_path / "pred.npz", 12, toy_body)
        res[v], info = evaluate(src, labels, None, bodies, tmp_path / v, renders=0, mpvpe_body=v)
        assert info["one_body_for_all_genders"] is True
    assert res["gendered"]["bMPVPE"] == res["neutral"]["bMPVPE"]
