"""People sources for ``ihmr predict``: box -> SPIN crop, box files, NMS, HOG, fallbacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ihmr.errors import DataError, ShapeError
from ihmr.pose import detect as D


def _iou_naive(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _random_boxes(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def test_box_to_spin_crop_by_hand():
    # 40 x 100 box centred at (70, 100): SPIN's demo crop is 1.2 * 100 px wide
    c, s = D.bbox_to_center_scale([50, 50, 90, 150])
    assert c.tolist() == [70.0, 100.0]
    assert s == pytest.approx(1.2 * 100 / 200)
    np.testing.assert_allclose(D.center_scale_to_bbox(c, s), [10, 40, 130, 160])
    c, s = D.bbox_to_center_scale([0, 0, 300, 30], rescale=1.0)
    assert s == pytest.approx(1.5)


def test_bad_box_is_named():
    with pytest.raises(DataError, match=r"x2 > x1.*not \[x, y, w, h\]"):
        D.bbox_to_center_scale([50, 50, 40, 150])


def test_whole_image_is_spin_demo_default():
    p = D.whole_image(240, 320)
    assert p.center.tolist() == [160.0, 120.0] and p.scale == pytest.approx(1.6)
    assert p.source == "whole_image" and np.isnan(p.confidence)


def test_iou_and_nms_match_naive_loops(rng):
    for n in (1, 7, 40):
        boxes = _random_boxes(rng, n)
        scores = rng.uniform(0, 1, n)
        iou = D.box_iou(boxes, boxes)
        for i in range(n):
            for j in range(n):
                assert iou[i, j] == pytest.approx(_iou_naive(boxes[i], boxes[j]), abs=1e-12)
        for thr in (0.1, 0.45, 0.8):
            kept = []
            for i in sorted(range(n), key=lambda k: -scores[k]):
                if all(_iou_naive(boxes[i], boxes[k]) <= thr for k in kept):
                    kept.append(i)
            assert D.nms(boxes, scores, thr).tolist() == kept


def test_box_files_json_csv_agree(tmp_path):
    want = {
        "a.jpg": [([10.0, 20.0, 60.0, 120.0], 0.9), ([5.0, 5.0, 15.0, 25.0], 1.0)],
        "b.png": [([0.0, 0.0, 50.0, 50.0], 1.0)],
    }
    (tmp_path / "d.json").write_text(
        json.dumps(
            {
                "a.jpg": [{"bbox": [10, 20, 60, 120], "score": 0.9}, [5, 5, 15, 25]],
                "b.png": [[0, 0, 50, 50]],
            }
        )
    )
    (tmp_path / "l.json").write_text(
        json.dumps(
            [
                {"image": "a.jpg", "bbox": [10, 20, 60, 120], "score": 0.9},
                {"image": "a.jpg", "bbox": [5, 5, 15, 25]},
                {"image": "b.png", "bbox": [0, 0, 50, 50]},
            ]
        )
    )
    (tmp_path / "xyxy.csv").write_text(
        "image,x1,y1,x2,y2,score\na.jpg,10,20,60,120,0.9\na.jpg,5,5,15,25,\nb.png,0,0,50,50,\n"
    )
    (tmp_path / "xywh.csv").write_text(
        "image,x,y,w,h\na.jpg,10,20,50,100\na.jpg,5,5,10,20\nb.png,0,0,50,50\n"
    )
    for name in ("d.json", "l.json", "xyxy.csv"):
        assert D.read_boxes(tmp_path / name) == want, name
    got = D.read_boxes(tmp_path / "xywh.csv")
    assert {k: [b for b, _ in v] for k, v in got.items()} == {
        k: [b for b, _ in v] for k, v in want.items()
    }


def test_box_file_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("name,x1,y1,x2,y2\na.jpg,1,2,3,4\n")
    with pytest.raises(DataError, match="header with 'image'"):
        D.read_boxes(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("image,x1,y1,x2,y2\na.jpg,1,2,oops,4\n")
    with pytest.raises(DataError, match=r"bad2.csv:2"):
        D.read_boxes(tmp_path / "bad2.csv")
    (tmp_path / "b.txt").write_text("")
    with pytest.raises(DataError, match=".json or .csv"):
        D.read_boxes(tmp_path / "b.txt")


def test_center_scale_file(tmp_path):
    np.savez(
        tmp_path / "c.npz",
        imgname=np.array(["x/a.jpg", "x/a.jpg"]),
        center=np.array([[10.0, 20.0], [30.0, 40.0]]),
        scale=np.array([1.0, 0.5]),
    )
    got = D.read_center_scale(tmp_path / "c.npz")
    assert list(got) == ["x/a.jpg"] and len(got["x/a.jpg"]) == 2
    np.savez(
        tmp_path / "bad.npz", imgname=np.array(["a"]), center=np.zeros((1, 3)), scale=np.ones(1)
    )
    with pytest.raises(ShapeError, match=r"center must be \(1, 2\)"):
        D.read_center_scale(tmp_path / "bad.npz")


def test_source_order_and_fallback():
    img = np.zeros((100, 80, 3), np.uint8)
    boxes = {"a.jpg": [([10.0, 10.0, 30.0, 70.0], 0.7)]}
    centers = {"a.jpg": [(np.array([5.0, 5.0]), 0.1)], "b.jpg": [(np.array([40.0, 50.0]), 0.3)]}
    people = D.find_people(img, "sub/a.jpg", boxes=boxes, centers=centers)
    assert [p.source for p in people] == ["boxes"] and people[0].confidence == 0.7
    np.testing.assert_allclose(people[0].center, [20, 40])
    assert people[0].scale == pytest.approx(1.2 * 60 / 200)
    people = D.find_people(img, "b.jpg", boxes=boxes, centers=centers)
    assert people[0].source == "center_scale" and people[0].scale == 0.3
    np.testing.assert_allclose(people[0].bbox, [10, 20, 70, 80])
    # nobody: no person, unless the whole image is the fallback
    assert D.find_people(img, "c.jpg", boxes=boxes, centers=centers) == []
    people = D.find_people(img, "c.jpg", fallback="whole-image")
    assert [p.source for p in people] == ["whole_image"]
    # a detector is asked only where no box is given, and its boxes become SPIN crops

    class Fixed:
        calls = 0

        def __call__(self, image):
            from ihmr.pose.detectors import Detection

            Fixed.calls += 1
            return [Detection(np.array([20.0, 10.0, 60.0, 90.0]), 0.8, "face", ("face", "hog"))]

    people = D.find_people(img, "a.jpg", boxes=boxes, detector=Fixed())
    assert people[0].source == "boxes" and Fixed.calls == 0
    people = D.find_people(img, "c.jpg", boxes=boxes, detector=Fixed(), fallback="whole-image")
    assert Fixed.calls == 1 and [p.source for p in people] == ["face"]
    assert people[0].evidence == "face+hog" and people[0].confidence == 0.8
    np.testing.assert_allclose(people[0].center, [40, 50])
    assert people[0].scale == pytest.approx(1.2 * 80 / 200)
    with pytest.raises(ValueError, match="fallback"):
        D.find_people(img, "c.jpg", fallback="whole")


def test_boxes_outside_the_image_are_named():
    img = np.zeros((100, 80, 3), np.uint8)
    for box in ([90, 10, 120, 50], [-40, 10, 0, 50], [10, 100, 30, 140]):
        with pytest.raises(DataError, match=r"^box 0 .* lies outside the 80 x 100 image"):
            D.find_people(img, "a.jpg", boxes={"a.jpg": [(box, 1.0)]})
    # partly outside is fine: the crop pads with black
    people = D.find_people(img, "a.jpg", boxes={"a.jpg": [([-10.0, 10.0, 30.0, 120.0], 1.0)]})
    np.testing.assert_allclose(people[0].center, [10, 65])
    with pytest.raises(DataError, match="centre/scale crop 0 .* outside"):
        D.find_people(img, "a.jpg", centers={"a.jpg": [(np.array([500.0, 50.0]), 0.1)]})


def _hog_or_skip():
    hog, reason = D.hog_detector()
    if hog is None:
        pytest.skip(reason)
    return hog


def test_hog_unavailable_reason_names_the_fix():
    hog, reason = D.hog_detector()
    assert (hog is None) == (reason is not None)
    if reason is not None:
        assert "opencv" in reason.lower() and "--boxes" in reason


def test_hog_finds_a_rendered_body():
    from ihmr.render import render_available

    hog = _hog_or_skip()
    if not render_available():
        pytest.skip("no offscreen OpenGL to render a body")
    from .test_predict import scene

    img, silhouette = scene(0.7, (0.0, 0.1), mask=True)
    boxes, scores = D.detect_hog(img, hog)
    assert len(boxes) >= 1 and np.all(scores >= 0.3)
    ys, xs = np.nonzero(silhouette)
    body = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    # HOG boxes the torso and legs (the arms stretch wider): the box lies on the body
    cx, cy = (boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2
    assert body[0] < cx < body[2] and body[1] < cy < body[3]
    assert (boxes[0, 3] - boxes[0, 1]) > 0.6 * (body[3] - body[1])
    # the HOG-only detector of ``--detector hog`` keeps that box, as a person of source "hog"
    from ihmr.pose.detectors import build_detector

    found = build_detector("hog")(img)
    assert len(found) >= 1 and found[0].source == "hog"
    fx, fy = (found[0].box[0] + found[0].box[2]) / 2, (found[0].box[1] + found[0].box[3]) / 2
    assert body[0] < fx < body[2] and body[1] < fy < body[3]
    empty, _ = D.detect_hog(np.full_like(img, 90), hog)
    assert len(empty) == 0
