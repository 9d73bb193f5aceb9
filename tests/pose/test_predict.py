"""``ihmr predict`` end to end on a random SPIN-layout checkpoint and rendered open-body images,
plus the checkpoint kinds (SPIN, trained head + backbone, export) and their mismatch messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ihmr.errors import DataError

H, W = 240, 320
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _background() -> np.ndarray:
    bg = np.zeros((H, W, 3), np.uint8)
    bg[:] = (90, 120, 60)
    bg[::8] = 200
    return bg


def scene(s: float, txy=(0.0, 0.0), mask: bool = False):
    """The open body standing (SPIN's 180 degree turn about x) rendered over a striped
    background with weak-perspective camera [s, tx, ty]; returns (image, silhouette mask or
    None)."""
    from ihmr.body import load_body
    from ihmr.render.mesh import render_mesh

    body = load_body("neutral")
    rot = torch.eye(3).expand(1, 24, 3, 3).clone()
    rot[0, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    v = body(torch.zeros(1, 10), rot).vertices[0].numpy()
    cam = np.array([s, *txy])
    img = render_mesh(v, body.faces, cam=cam, image=_background())
    if not mask:
        return img, None
    black = render_mesh(v, body.faces, cam=cam, image=np.zeros((H, W, 3), np.uint8))
    white = render_mesh(v, body.faces, cam=cam, image=np.full((H, W, 3), 255, np.uint8))
    return img, np.all(black == white, axis=-1)


def _naive_crop(img: np.ndarray, center, scale: float, res: int = 224) -> np.ndarray:
    """SPIN's crop by hand: crop pixel (i, j) samples the image at
    center + ((j, i) - res / 2) * 200 scale / res (bilinear, black outside), ImageNet-normalised."""
    b = 200.0 * scale
    jj, ii = np.meshgrid(np.arange(res), np.arange(res))
    x = center[0] + (jj - res / 2) * b / res
    y = center[1] + (ii - res / 2) * b / res
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros((res, res, 3))
    src = img.astype(np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            wgt = (1 - np.abs(y - (y0 + dy))) * (1 - np.abs(x - (x0 + dx)))
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < img.shape[0]) & (xx >= 0) & (xx < img.shape[1])
            vals = src[np.clip(yy, 0, img.shape[0] - 1), np.clip(xx, 0, img.shape[1] - 1)]
            out += (wgt * inside)[..., None] * vals
    return ((out / 255.0 - MEAN) / STD).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def spin_ckpt(tmp_path_factory):
    """A randomly initialised HMR saved in SPIN's layout ({'model': flat state dict})."""
    from ihmr.body import load_body
    from ihmr.io import torch_save
    from ihmr.models.hmr import HMR

    torch.manual_seed(0)
    model = HMR(load_body("neutral").mean_params)
    path = tmp_path_factory.mktemp("ckpt") / "model_checkpoint.pt"
    torch_save(path, {"model": model.spin_state_dict(), "optimizer": {}, "epoch": 1})
    return path


@pytest.fixture(scope="module")
def spin_model(spin_ckpt):
    from ihmr.models.hmr import load_spin_model

    return load_spin_model(spin_ckpt)


@pytest.fixture(scope="module")
def run(tmp_path_factory, spin_ckpt):
    """One predict run: a user box (img0), a SPIN centre/scale (sub/img1), nothing (img2: the
    automatic detector, else the whole image as the fallback), an unreadable file."""
    from ihmr.pose.predict import PredictOptions, predict_images
    from ihmr.render import render_available

    root = tmp_path_factory.mktemp("run")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    import cv2

    rendered = render_available()
    if rendered:
        img0, _ = scene(0.7, (0.0, 0.1))
        img1, _ = scene(1.0)
    else:  # no OpenGL: plain pictures still exercise everything but the overlays
        img0 = img1 = _background()
    img2 = _background()
    for name, img in (("img0.png", img0), ("sub/img1.png", img1), ("img2.png", img2)):
        cv2.imwrite(str(images / name), img[..., ::-1])
    (images / "broken.jpg").write_bytes(b"this is not a JPEG")
    (root / "boxes.json").write_text(
        json.dumps({"img0.png": [[110, 30, 210, 225]], "gone.png": [[0, 0, 10, 10]]})
    )
    np.savez(
        root / "centers.npz",
        imgname=np.array(["sub/img1.png"]),
        center=np.array([[160.0, 120.0]]),
        scale=np.array([1.2]),
    )
    summary = predict_images(
        images,
        spin_ckpt,
        root / "out",
        PredictOptions(
            boxes=root / "boxes.json",
            centers=root / "centers.npz",
            batch_size=2,
            render=rendered,
            device="cpu",
            fallback="whole-image",
            show_boxes=True,
        ),
    )
    with np.load(root / "out" / "predictions.npz", allow_pickle=False) as z:
        preds = {k: z[k] for k in z.files}
    return {
        "root": root,
        "images": images,
        "out": root / "out",
        "summary": summary,
        "preds": preds,
        "rendered": rendered,
        "img0": img0,
    }


def test_outputs_keys_shapes_and_sources(run):
    p, s = run["preds"], run["summary"]
    n = 3
    shapes = {
        "pose": (n, 72),
        "rotmat": (n, 24, 3, 3),
        "betas": (n, 10),
        "cam": (n, 3),
        "center": (n, 2),
        "scale": (n,),
        "bbox": (n, 4),
        "confidence": (n,),
        "imgname": (n,),
        "source": (n,),
        "evidence": (n,),
        "person": (n,),
    }
    assert {k: p[k].shape for k in shapes} == shapes
    assert p["imgname"].tolist() == ["img0.png", "img2.png", "sub/img1.png"]
    assert p["source"][0] == "boxes" and p["source"][2] == "center_scale"
    assert p["source"][1] in (
        "face",
        "profile_face",
        "upper_body",
        "full_body",
        "hog",
        "whole_image",
    )
    assert p["evidence"][0] == "boxes" and p["evidence"][2] == "center_scale"
    np.testing.assert_allclose(p["bbox"][0], [110, 30, 210, 225])
    np.testing.assert_allclose(p["center"][0], [160, 127.5])
    assert p["scale"][0] == pytest.approx(1.2 * 195 / 200)
    np.testing.assert_allclose(p["center"][2], [160, 120])
    assert p["scale"][2] == 1.2
    # the unreadable file is reported and skipped, the rest went on
    assert s["images"] == 4 and s["images_done"] == 3 and s["people"] == 3
    assert [k["image"] for k in s["skipped"]] == ["broken.jpg"]
    assert "could not read" in s["skipped"][0]["reason"]
    assert s["unmatched_entries"] == {"boxes": ["gone.png"]}
    # summary.json is strict JSON (no NaN) and matches the returned summary
    text = (run["out"] / "summary.json").read_text()
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded["people_by_source"] == s["people_by_source"]
    assert sum(s["people_by_source"].values()) == 3


def test_pose_is_the_axis_angle_of_rotmat(run):
    from scipy.spatial.transform import Rotation

    p = run["preds"]
    rot = p["rotmat"].reshape(-1, 3, 3).astype(np.float64)
    np.testing.assert_allclose(
        rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5
    )
    want = Rotation.from_rotvec(p["pose"].reshape(-1, 3).astype(np.float64)).as_matrix()
    np.testing.assert_allclose(want, rot, atol=1e-5)


def test_known_box_maps_to_expected_crop(run):
    from ihmr.pose.crop import crop_image, normalise
    from ihmr.pose.detect import bbox_to_center_scale

    img = run["img0"]
    c, s = bbox_to_center_scale([110, 30, 210, 225])
    got = normalise(crop_image(img, c, s))
    want = _naive_crop(img, c, s)
    # OpenCV's bilinear weights are fixed point (1/32 px): allow a couple of grey levels
    assert np.abs(got - want).max() * 0.229 * 255 < 4.0
    # the box's long side (195 px) spans 224 / 1.2 crop pixels about the crop centre
    mark = np.zeros((H, W, 3), np.uint8)
    mark[30:225, 110:210] = 255
    m = crop_image(mark, c, s)[..., 0] > 0.5
    rows = np.flatnonzero(m.any(1))
    assert abs(rows[0] - (112 - 112 / 1.2)) <= 1 and abs(rows[-1] + 1 - (112 + 112 / 1.2)) <= 1


def test_predictions_equal_model_on_independent_crop(run, spin_model):
    from ihmr.pose.detect import bbox_to_center_scale

    c, s = bbox_to_center_scale([110, 30, 210, 225])
    x = torch.from_numpy(_naive_crop(run["img0"], c, s)).float()[None]
    with torch.no_grad():
        out = spin_model(x)
    p = run["preds"]
    np.testing.assert_allclose(p["betas"][0], out.betas[0].numpy(), atol=2e-3)
    np.testing.assert_allclose(p["cam"][0], out.cam[0].numpy(), atol=2e-3)


def test_overlays_written_and_placed(run):
    import cv2

    if not run["rendered"]:
        pytest.skip("no offscreen OpenGL backend")
    s, p = run["summary"], run["preds"]
    for entry in s["per_image"]:
        front = cv2.imread(entry["overlay"])[..., ::-1]
        side = cv2.imread(entry["side"])[..., ::-1]
        assert front.shape == side.shape == (H, W, 3)
        orig = cv2.imread(str(run["images"] / entry["image"]))[..., ::-1]
        changed = np.any(front != orig, axis=-1)
        assert changed.sum() > 500 and np.any(side != 255)
        # a body of camera scale ~0.9 fills ~0.9 of its crop: every drawn pixel lies in the crop
        i = int(np.flatnonzero(p["imgname"] == entry["image"])[0])
        half = 100 * p["scale"][i]
        ys, xs = np.nonzero(changed)
        cx, cy = p["center"][i]
        assert xs.min() >= cx - half - 2 and xs.max() <= cx + half + 2
        assert ys.min() >= cy - half - 2 and ys.max() <= cy + half + 2
    # --show-boxes: the user box of img0 is outlined over the rendered body, in its colour
    from ihmr.pose.show import COLOURS

    front = cv2.imread(run["summary"]["per_image"][0]["overlay"])[..., ::-1]
    assert tuple(front[127, 110]) == tuple(front[200, 209]) == COLOURS["boxes"]


def test_readers_of_render_and_eval_accept_predictions(run, toy_body):
    from ihmr.pose.evaluate import predictions_from_file
    from ihmr.render.predictions import load_params

    path = run["out"] / "predictions.npz"
    d = load_params(path)
    assert d["pose"].shape == (3, 72) and d["cam"].shape == (3, 3) and len(d["imgname"]) == 3
    src = predictions_from_file(path, 3, toy_body)
    out = src(0, 3)
    torch.testing.assert_close(
        out["rotmat"], torch.from_numpy(run["preds"]["rotmat"]), atol=1e-5, rtol=0
    )


@pytest.mark.gpu
def test_gpu_matches_cpu(spin_model):
    from ihmr.pose.predict import run_model

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    crops = np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32)
    cpu = run_model(spin_model, crops, torch.device("cpu"), 2)
    gpu = run_model(spin_model.to("cuda"), crops, torch.device("cuda"), 2)
    spin_model.to("cpu")
    for k in cpu:
        np.testing.assert_allclose(gpu[k], cpu[k], atol=2e-3, err_msg=k)


def test_head_checkpoint_with_backbone_and_export(tmp_path, spin_ckpt, spin_model):
    from ihmr.io import torch_save
    from ihmr.models.hmr import HMRHead, head_checkpoint
    from ihmr.pose.checkpoints import export_model, load_model
    from ihmr.pose.features import file_fingerprint
    from ihmr.runs import save_checkpoint

    torch.manual_seed(1)
    head = HMRHead(2048)
    for prm in head.parameters():
        prm.data.normal_(0, 0.02)
    fp = file_fingerprint(spin_ckpt)
    torch_save(tmp_path / "head.pt", head_checkpoint(head.eval(), features_fingerprint=fp))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = head(spin_model.backbone.features(x))
        got = load_model(tmp_path / "head.pt", spin_ckpt)
        assert got.kind == "ihmr-pose-head" and got.info["backbone_fingerprint"] == fp
        torch.testing.assert_close(got.model(x).rotmat, want.rotmat)
        export_model(tmp_path / "head.pt", tmp_path / "model.pt", spin_ckpt)
        ex = load_model(tmp_path / "model.pt")
        assert ex.kind == "ihmr-hmr-model" and ex.info["backbone_fingerprint"] == fp
        torch.testing.assert_close(ex.model(x).cam, want.cam)
        # a run's resumable last.pt holds the head under state/head, the fingerprint in extra
        save_checkpoint(
            tmp_path / "last.pt", {"head": head}, epoch=3, extra={"features_fingerprint": fp}
        )
        last = load_model(tmp_path / "last.pt", spin_ckpt)
        torch.testing.assert_close(last.model(x).betas, want.betas)
    # a head trained on another backbone's features
    torch_save(tmp_path / "other.pt", head_checkpoint(head, features_fingerprint="0" * 16))
    with pytest.raises(DataError, match=f"fingerprint 0{{16}}.*fingerprint {fp}"):
        load_model(tmp_path / "other.pt", spin_ckpt)
    assert load_model(tmp_path / "other.pt", spin_ckpt, allow_mismatch=True).info[
        "fingerprint_mismatch"
    ]
    with pytest.raises(DataError, match="--backbone"):
        load_model(tmp_path / "other.pt")


def test_backbone_found_through_training_config(tmp_path, spin_ckpt):
    from ihmr.io import torch_save, write_json
    from ihmr.models.hmr import HMRHead, head_checkpoint
    from ihmr.pose.checkpoints import load_model
    from ihmr.pose.features import file_fingerprint

    fp = file_fingerprint(spin_ckpt)
    write_json(
        tmp_path / "feats" / "index.json",
        {"source": {"checkpoint": str(spin_ckpt), "fingerprint": fp}},
    )
    cfg = {"data": {"root": str(tmp_path), "train": [{"features": "feats"}]}}
    torch_save(
        tmp_path / "head.pt", head_checkpoint(HMRHead(2048), features_fingerprint=fp, config=cfg)
    )
    got = load_model(tmp_path / "head.pt")
    assert got.info["backbone"] == str(spin_ckpt)
    assert got.info["backbone_found_via"] == "training config"


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path, spin_ckpt):
    from ihmr.io import torch_save
    from ihmr.pose.checkpoints import load_model

    sd = torch.load(spin_ckpt, weights_only=True)["model"]
    sd.pop("layer3.1.conv2.weight")
    sd["decshape.weight"] = torch.zeros(11, 1024)
    sd["extra.bias"] = torch.zeros(3)
    torch_save(tmp_path / "bad.pt", {"model": sd})
    with pytest.raises(DataError) as err:
        load_model(tmp_path / "bad.pt")
    msg = str(err.value)
    assert "missing keys ['layer3.1.conv2.weight']" in msg and "extra.bias" in msg
    assert "decshape.weight: expected (10, 1024), got (11, 1024)" in msg


def test_cli_predict_without_render(tmp_path, run, spin_ckpt):
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    res = CliRunner().invoke(
        app,
        [
            "predict",
            "--images",
            str(run["images"] / "img2.png"),
            "--checkpoint",
            str(spin_ckpt),
            "--out",
            str(tmp_path / "o"),
            "--detector",
            "none",
            "--no-render",
            "--device",
            "cpu",
            "--fallback",
            "whole-image",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "img2.png: 1 person (whole_image 1)" in res.output
    assert "1 people in 1 of 1 images (whole_image 1)" in res.output
    with np.load(tmp_path / "o" / "predictions.npz") as z:
        assert z["source"].tolist() == ["whole_image"]
        np.testing.assert_allclose(z["center"][0], [W / 2, H / 2])
    assert not (tmp_path / "o" / "overlays").exists()


def test_no_images_is_a_clear_error(tmp_path, spin_ckpt):
    from ihmr.pose.predict import predict_images

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        predict_images(tmp_path / "empty", spin_ckpt, tmp_path / "o")
    (tmp_path / "empty" / "a.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predict_images(tmp_path / "empty", tmp_path / "nope.pt", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_overlay_names_never_collide():
    from ihmr.pose.predict import overlay_stems

    got = overlay_stems(["a.jpg", "a.png", "sub/a.jpg", "b.jpeg"])
    assert got == {"a.jpg": "a_jpg", "a.png": "a_png", "sub/a.jpg": "sub__a", "b.jpeg": "b"}
    assert len(set(got.values())) == len(got)


# ------------------------------------------------------- real photos, nobody, boxes, bad input
def _grace_hopper():
    from pathlib import Path

    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _photo_folder(tmp_path):
    """grace_hopper.jpg (one person, half-length), a people-free picture, a broken file."""
    import shutil

    import cv2

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(_grace_hopper(), images / "grace.jpg")
    cv2.imwrite(str(images / "wall.png"), _background())
    (images / "broken.jpg").write_bytes(b"this is not a JPEG")
    return images


def test_cli_summary_lines_nobody_and_show_boxes(tmp_path, spin_ckpt):
    import cv2
    from typer.testing import CliRunner

    from ihmr.cli import _register, app
    from ihmr.pose.show import COLOURS

    _register()
    images = _photo_folder(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "predict",
            "--images",
            str(images),
            "--checkpoint",
            str(spin_ckpt),
            "--out",
            str(tmp_path / "o"),
            "--no-render",
            "--show-boxes",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "grace.jpg: 1 person (face 1)" in lines
    assert "wall.png: nobody found" in lines
    assert any(x.startswith("skipped broken.jpg: ") for x in lines)
    assert any(x.startswith("1 people in 2 of 3 images (face 1) on cpu") for x in lines)
    assert any(x.startswith("nobody found in 1 images: wall.png") for x in lines)
    with np.load(tmp_path / "o" / "predictions.npz") as z:
        assert z["imgname"].tolist() == ["grace.jpg"] and z["source"].tolist() == ["face"]
        box = z["bbox"][0]
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["nobody"] == ["wall.png"] and s["people_by_source"]["face"] == 1
    # the overlay is the photo with the box outlined in the face colour, nothing else changed
    over = cv2.imread(str(tmp_path / "o" / "overlays" / "grace.png"))[..., ::-1]
    orig = cv2.imread(str(images / "grace.jpg"))[..., ::-1]
    assert over.shape == orig.shape
    changed = np.any(over.astype(int) != orig, axis=-1)
    ys, xs = np.nonzero(changed)
    # every changed pixel is on the outline (2 px thick here) or in the label "face 0.93",
    # drawn at the box's top-left corner (at most 150 x 30 px)
    x1, y1, x2, y2 = np.round(box).astype(int)
    on_edge = (
        (np.abs(xs - x1) <= 2)
        | (np.abs(xs - (x2 - 1)) <= 2)
        | (np.abs(ys - y1) <= 2)
        | (np.abs(ys - (y2 - 1)) <= 2)
    )
    in_label = (xs >= x1) & (xs < x1 + 150) & (ys < y1 + 30)
    assert np.all(on_edge | in_label) and on_edge.sum() > 2 * (y2 - y1)
    mid = int(round((box[1] + box[3]) / 2))
    left = int(round(box[0])) if box[0] > 0 else 0
    assert tuple(over[mid, left]) == COLOURS["face"]
    assert sorted(p.name for p in (tmp_path / "o" / "overlays").iterdir()) == ["grace.png"]


def _run_main(monkeypatch, capsys, *args):
    import sys

    from ihmr.cli import main

    monkeypatch.setattr(sys, "argv", ["ihmr", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--min-size", "-5"], "--min-size must be >= 0 px, got -5.0"),
        (["--score-threshold", "2"], "--score-threshold must be in [0, 1]"),
        (["--max-people", "0"], "--max-people must be >= 1"),
        (["--fallback", "whole"], "did you mean 'whole-image'"),
        (["--detector", "dnn"], "--detector dnn needs --detector-model"),
        (["--detector-model", "nope.onnx"], "detector model 'nope.onnx' not found"),
    ],
)
def test_bad_options_one_line_and_nothing_written(
    tmp_path, spin_ckpt, monkeypatch, capsys, extra, message
):
    images = _photo_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, cap = _run_main(
        monkeypatch,
        capsys,
        "predict",
        "--images",
        images,
        "--checkpoint",
        spin_ckpt,
        "--out",
        tmp_path / "o",
        "--no-render",
        *extra,
    )
    assert code == 2
    assert cap.err.startswith("error: ") and message in cap.err
    assert len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_empty_folder_and_box_outside_the_image(tmp_path, spin_ckpt, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    code, cap = _run_main(
        monkeypatch,
        capsys,
        "predict",
        "--images",
        tmp_path / "empty",
        "--checkpoint",
        spin_ckpt,
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and cap.err.startswith("error: no images")
    assert len(cap.err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    # a box outside its image: that image is skipped with one line, the others go on
    images = _photo_folder(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps({"grace.jpg": [[600, 10, 700, 200]]}))
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    res = CliRunner().invoke(
        app,
        [
            "predict",
            "--images",
            str(images),
            "--checkpoint",
            str(spin_ckpt),
            "--out",
            str(tmp_path / "o"),
            "--no-render",
            "--boxes",
            str(tmp_path / "b.json"),
            "--device",
            "cpu",
            "--fallback",
            "whole-image",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        "skipped grace.jpg: box 0 [600.0, 10.0, 700.0, 200.0] lies outside the "
        "512 x 600 image (boxes are [x1, y1, x2, y2] pixels)"
    ) in res.output.splitlines()
    with np.load(tmp_path / "o" / "predictions.npz") as z:
        assert z["imgname"].tolist() == ["wall.png"] and z["source"].tolist() == ["whole_image"]
