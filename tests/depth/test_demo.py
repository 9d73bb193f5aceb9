"""The depth demo: ray-cast haze rooms against closed forms, the cue's noise, and a tiny
``run_depth_demo`` end to end whose numbers are recomputed independently from the written files."""

import json

import numpy as np
import pytest

pytest.importorskip("cv2")


def _settings(**kw):
    from ihmr.depth.demo_scenes import SceneSettings

    return SceneSettings(**kw)


def test_ray_cast_depths_match_closed_forms():
    from ihmr.depth import demo_scenes as S

    st = _settings(sensor_noise=0.0)
    lo, hi = np.array([-2.0, -1.2, -5.0]), np.array([2.0, 1.5, 1.0])  # camera 1.2 m above the floor
    box = (np.array([-0.3, -1.2, -2.5]), np.array([0.3, -0.2, -2.0]))  # front face 2 m away
    pose = np.eye(4)
    ones = np.ones(7), np.ones((7, 3))
    _, depth = S.render_view((lo, hi, [box]), pose, *ones, st, np.random.default_rng(0))
    w, h = S.IMAGE_WH
    f = (h / 2) / np.tan(S.YFOV / 2)
    # the top-centre pixel sees the ceiling 1.5 m above: depth = 1.5 f / (h/2 - v - 0.5)
    assert depth[0, w // 2] == pytest.approx(1.5 * f / (h / 2 - 0.5), rel=1e-5)
    # a pixel just above the image centre sees the back wall at 5 m
    assert depth[h // 2 - 3, w // 2] == pytest.approx(5.0, rel=1e-5)
    # the bottom row sees the floor 1.2 m below, in front of the box: 1.2 f / (v + 0.5 - h/2)
    v = h - 1
    assert depth[v, 5] == pytest.approx(min(1.2 * f / (v + 0.5 - h / 2), 5.0), rel=1e-5)
    # the box's front face covers rows whose ray meets z = -2 between y = -1.2 and -0.2
    vv = int(h / 2 + 0.6 * f / 2.0)  # y = -0.6 at z = -2
    assert depth[vv, w // 2] == pytest.approx(2.0, rel=1e-5)


def test_haze_cue_gives_depth_with_gaussian_sigma():
    from ihmr.depth import demo_scenes as S

    st = _settings(sensor_noise=0.0)
    rng = np.random.default_rng(1)
    albedo, tint = S._surfaces(rng, 20000, st)
    # tints have unit luminance; log albedo is N(log A, (sigma / L)^2)
    np.testing.assert_allclose(tint @ [0.299, 0.587, 0.114], 1.0, rtol=1e-12)
    read_err = -st.attenuation_m * (np.log(albedo) - np.log(st.mean_albedo))
    assert abs(read_err.mean()) < 0.02 and read_err.std() == pytest.approx(
        st.noise_sigma_m, rel=0.03
    )
    # with the mean albedo on every surface, -L log(lum / (255 A)) reads the depth back exactly
    # up to the 8-bit rounding of the colour
    room = S._room(rng, 7.0, 1.0)
    n = 6 + len(room[2])
    rgb, depth = S.render_view(
        room, S._pose(rng), np.full(n, st.mean_albedo), np.ones((n, 3)), st, rng
    )
    lum = rgb[..., 0].astype(np.float64) / 255.0
    read = -st.attenuation_m * np.log(lum / st.mean_albedo)
    step = st.attenuation_m * 0.5 / (255 * st.mean_albedo * np.exp(-depth / st.attenuation_m))
    assert (np.abs(read - depth) <= step * 1.01 + 1e-6).all()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from ihmr.depth.demo import run_depth_demo
    from ihmr.depth.demo_scenes import make_haze_dataset

    out = tmp_path_factory.mktemp("depth_demo")
    info = make_haze_dataset(
        out / "data", _settings(train_scenes=5, test_scenes=2, views=2, per_bin=40)
    )
    logs = []
    res = run_depth_demo(
        out,
        seeds=(0, 1),
        stage1_epochs=1,
        head_epochs=2,
        threads=1,
        losses=("mse", "bni"),
        log=logs.append,
    )
    return out, info, res, logs


@pytest.mark.slow
def test_demo_data_layout_and_imbalance(demo_run):
    from ihmr.depth import data as D

    out, info, _, _ = demo_run
    assert info["train_images"] == 10 and info["test_images"] == 4
    mask = np.load(out / "data/data/test_balanced_mask.npy")
    test = D.NYUD2DIR(D.Layout(str(out / "data")), "test")
    depth = np.stack([test.load(i)[1] for i in range(len(test))])
    counts = np.bincount(D.depth_bins(depth[mask]), minlength=D.N_BINS)
    assert counts.max() <= 40 and counts[:7].sum() == 0 and mask.sum() == info["mask_pixels"]
    shots = json.loads((out / "data/data/shots.json").read_text())
    train_counts = np.load(out / "data/data/train_bin_counts.npz")["counts"]
    share = train_counts / train_counts.sum()
    assert all(share[b] > 0.01 for b in shots["many"]) and all(
        share[b] < 0.001 for b in shots["few"]
    )


@pytest.mark.slow
def test_demo_numbers_recomputed_from_files(demo_run):
    import cv2
    import torch
    import torch.nn.functional as F

    from ihmr.depth.evaluate import load_depth_model
    from ihmr.depth.model import pixel_regressor

    out, _, res, _ = demo_run
    results = json.loads((out / "results.json").read_text())
    mask = np.load(out / "data/data/test_balanced_mask.npy")
    rows = (out / "data/data/nyu2_test.csv").read_text().split()
    gt = (
        np.stack(
            [
                cv2.imread(str(out / "data" / r.split(",")[1]), cv2.IMREAD_UNCHANGED)[6:234, 8:312]
                for r in rows
            ]
        ).astype(np.float64)
        / 1000.0
    )  # 320 x 240 -> centre 304 x 228
    t = gt[mask]

    def metrics(pred):  # plain numpy: pooled RMSE and delta1 over the mask's pixels
        p = np.clip(pred[mask], 1e-3, None)
        return np.sqrt(np.mean((p - t) ** 2)), np.mean(np.maximum(p / t, t / p) < 1.25)

    model, _ = load_depth_model(out / "stage1/best.pt")
    with np.load(out / "features.npz") as z:
        test_x, test_img = torch.from_numpy(z["test_x"]), torch.from_numpy(z["test_img"])
    with torch.no_grad():
        up = lambda y: F.interpolate(y, size=(228, 304), mode="bilinear", align_corners=True)  # noqa: E731
        pred1 = up(model.refine(test_x))[:, 0].double().numpy()
        rmse, d1 = metrics(pred1)
        assert results["stage1"]["overall"]["rmse"] == pytest.approx(rmse, rel=1e-5)
        assert results["stage1"]["overall"]["delta1"] == pytest.approx(d1, abs=1e-6)
        for loss in ("mse", "bni"):
            for seed in (0, 1):
                head = pixel_regressor()  # R of the demo reads the 64 x 48 input image
                head.load_state_dict(
                    torch.load(out / f"heads/{loss}_s{seed}.pt", weights_only=True)
                )
                head.eval()
                rmse, d1 = metrics(up(head(test_img))[:, 0].double().numpy())
                rec = json.loads((out / f"heads/{loss}_s{seed}.json").read_text())
                assert rec["test"]["overall"]["rmse"] == pytest.approx(rmse, rel=1e-5)
                assert rec["test"]["overall"]["delta1"] == pytest.approx(d1, abs=1e-6)
    # the report's mean +- std and verdict come from the per-seed results
    per_seed = [
        json.loads((out / f"heads/bni_s{s}.json").read_text())["test"]["overall"]["rmse"]
        for s in (0, 1)
    ]
    got = results["summary"]["bni"]["rmse"]["overall"]
    assert got == pytest.approx([np.mean(per_seed), np.std(per_seed, ddof=1)])
    report = (out / "report.md").read_text()
    assert f"{np.mean(per_seed):.3f} ± {np.std(per_seed, ddof=1):.3f}" in report
    assert res["verdict"][0].startswith("BNI: balanced RMSE") and res["verdict"][0] in report
    assert (out / "error_per_bin.png").stat().st_size > 0


@pytest.mark.slow
def test_demo_resumes_and_retrains_only_what_changed(demo_run):
    from ihmr.depth.demo import run_depth_demo

    out, _, res, _ = demo_run
    logs = []
    res2 = run_depth_demo(
        out,
        seeds=(0, 1),
        stage1_epochs=1,
        head_epochs=2,
        threads=1,
        losses=("mse", "bni"),
        log=logs.append,
    )
    assert res2["results"] == res["results"]
    assert sum("reusing" in line for line in logs) == 2 + 4  # data, stage 1 and the four R runs
    assert not any(line.startswith(("features: caching", "stage 1 (MSE")) for line in logs)
    rec = json.loads((out / "heads/bni_s1.json").read_text())
    rec["key"]["config"]["loss"]["init_noise_sigma"] = (
        9.0  # as if made with another sigma: not reused
    )
    (out / "heads/bni_s1.json").write_text(json.dumps(rec))
    logs.clear()
    res3 = run_depth_demo(
        out,
        seeds=(0, 1),
        stage1_epochs=1,
        head_epochs=2,
        threads=1,
        losses=("mse", "bni"),
        log=logs.append,
    )
    assert sum("reusing" in line for line in logs) == 2 + 3
    assert res3["results"]["bni"] == res["results"]["bni"]  # retrained the same way, same numbers


def _linear_feats(n=6, wh=(16, 12), seed=0):
    """A feature file in memory where depth is a known linear function of the image's first
    channel, at the input resolution and, averaged 2 x 2, at the features' resolution."""
    import torch
    import torch.nn.functional as F

    from ihmr.depth.data import CROP_WH

    rng = np.random.default_rng(seed)
    feats = {}
    for split in ("train", "val", "test"):
        img = torch.from_numpy(rng.uniform(-1, 1, (n, 3, wh[1], wh[0])).astype(np.float32))
        img = F.interpolate(F.avg_pool2d(img, 2), scale_factor=2.0, mode="nearest")  # 2x2 blocks
        y = 4.0 + 2.5 * img[:, :1]  # 1.5-6.5 m
        feats[f"{split}_img"] = img
        feats[f"{split}_x"] = F.avg_pool2d(img, 2).repeat(1, 6, 1, 1)[:, :16]  # 16 channels
        if split == "train":
            feats["train_y_img"], feats["train_y"] = y, F.avg_pool2d(y, 2)
        else:  # 4,000 pixels of the 228 x 304 crops, upsampled as the evaluation does
            up = F.interpolate(
                y, size=(CROP_WH[1], CROP_WH[0]), mode="bilinear", align_corners=True
            )
            feats[f"{split}_idx"] = np.sort(rng.choice(up.numel(), 4000, replace=False))
            feats[f"{split}_t"] = up.numpy().ravel()[feats[f"{split}_idx"]].astype(np.float32)
    return feats


def test_pixel_head_learns_a_per_pixel_cue_and_hu_head_still_trains():
    from ihmr.depth.demo import head_config
    from ihmr.depth.rrt import head_inputs, head_targets, make_head, predict_pixels, train_head

    feats = _linear_feats()
    shots = {"many": list(range(100)), "medium": [], "few": []}
    cfg = head_config("mse", 0, 0.4, epochs=40)
    cfg.pixel_batch = 256
    assert head_targets(feats, cfg) is feats["train_y_img"]
    assert head_inputs(feats, cfg, "test") is feats["test_img"]
    r = train_head(feats, cfg, shots)
    # the per-pixel regressor reads depth = 4 + 2.5 x back on unseen images: the depths spread by
    # 1.4 m (std), a regressor fed the wrong pixels' targets would miss by as much
    assert r["test"]["overall"]["rmse"] < 0.25 and r["test"]["overall"]["delta1"] > 0.97
    head = make_head(cfg)
    head.load_state_dict(r["state"])
    pred = predict_pixels(head, feats["test_img"], feats["test_idx"])
    rmse = np.sqrt(np.mean((pred - feats["test_t"]) ** 2))
    assert rmse == pytest.approx(r["test"]["overall"]["rmse"], rel=1e-5)
    # pixels below 0.7 m carry no loss: training on targets with garbage there changes nothing
    low = dict(feats, train_y_img=feats["train_y_img"].clone())
    low["train_y_img"][:, :, :2] = 0.1
    r2 = train_head(low, cfg, shots)
    assert r2["test"]["overall"]["rmse"] < 0.3
    hu = head_config("mse", 0, 0.4, epochs=2, head="hu")
    assert hu.epochs == 2 and head_targets(feats, hu) is feats["train_y"]
    assert np.isfinite(train_head(feats, hu, shots)["test"]["overall"]["rmse"])


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"losses": ("mse", "l1")}, "losses"),
        ({"seeds": ()}, "seeds"),
        ({"head_epochs": 0}, "head_epochs"),
        ({"sigma": -1.0}, "sigma"),
        ({"read_noise": 0.0}, "read_noise"),
        ({"head": "conv"}, "head"),
    ],
)
def test_demo_refuses_bad_settings_before_any_work(tmp_path, kw, word):
    from ihmr.depth.demo import run_depth_demo
    from ihmr.errors import IhmrError

    with pytest.raises(IhmrError, match=word):
        run_depth_demo(tmp_path / "out", log=lambda s: None, **kw)
    assert not (tmp_path / "out").exists()


def test_cli_demo_wiring(tmp_path):
    from typer.testing import CliRunner

    from ihmr.cli import _register, app
    from ihmr.errors import ConfigError

    _register()
    out = CliRunner().invoke(app, ["depth", "demo", "--help"])
    assert out.exit_code == 0 and "--stage1-epochs" in out.output and "--sigma" in out.output
    bad = CliRunner().invoke(app, ["depth", "demo", "--out", str(tmp_path / "d"), "--seeds", "0"])
    assert isinstance(bad.exception, ConfigError) and not (tmp_path / "d").exists()
