"""The automatic detectors' parts: head and body geometry, the cross-source merge, settings,
and the ONNX detector through OpenCV's DNN module on tiny networks with known outputs."""

from __future__ import annotations

import numpy as np
import pytest

from ihmr.errors import DataError
from ihmr.pose import detectors as T
from ihmr.pose import dnn as N
from ihmr.pose.detectors import Detection, DetectSettings


def test_body_from_head_by_hand():
    # head 40 x 50 at x 100..140: 7.5 heads tall from its top, 2.8 heads wide about x = 120
    np.testing.assert_allclose(
        T.body_from_head(np.array([100.0, 50, 140, 100]), 1000, 1000),
        [120 - 56, 50, 120 + 56, 50 + 375],
    )
    # clipped to a 300 x 200 (h x w) image
    np.testing.assert_allclose(
        T.body_from_head(np.array([0.0, 10, 40, 60]), 300, 200), [0, 10, 20 + 56, 300]
    )


def test_head_estimates_by_hand():
    # a 100 px face box at (200, 100): the head runs 40 px above it and 5 px below
    np.testing.assert_allclose(T.head_of("face", 200, 100, 100, 100), [195, 60, 305, 205])
    # a 64 x 128 HOG window at (0, 0): the person is the middle 96 px, head 12.8 px below 16
    np.testing.assert_allclose(
        T.head_of("hog", 0, 0, 64, 128), [32 - 0.4 * 12.8, 16, 32 + 0.4 * 12.8, 16 + 12.8]
    )
    np.testing.assert_allclose(T.head_of("upper_body", 0, 0, 100, 80), [30, 16, 70, 56])


def _cand(source, head, score, box=None):
    head = np.asarray(head, np.float64)
    box = T.body_from_head(head, 1000, 1000) if box is None else np.asarray(box, np.float64)
    return Detection(box, score, source, (source,), head)


def test_merge_same_head_across_sources_is_one_person():
    s = DetectSettings(score_threshold=0.0)
    cands = [
        _cand("profile_face", [102, 52, 142, 102], 0.5),
        _cand("face", [100, 50, 140, 100], 0.6),
        _cand("face", [101, 51, 141, 101], 0.55),  # a duplicate of the same source
        _cand("face", [400, 50, 440, 100], 0.4),
    ]
    got = T.merge_candidates(cands, s)
    assert len(got) == 2
    # noisy-or of the best score per source: 1 - (1 - 0.6)(1 - 0.5); the duplicate adds nothing
    assert got[0].score == pytest.approx(0.8) and got[0].evidence == ("face", "profile_face")
    assert got[0].source == "face"
    np.testing.assert_allclose(
        got[0].box, T.body_from_head(np.array([100.0, 50, 140, 100]), 1000, 1000)
    )
    assert got[1].score == pytest.approx(0.4) and got[1].evidence == ("face",)


def test_merge_drops_body_parts_and_keeps_people_below_heads():
    s = DetectSettings(score_threshold=0.0)
    face = _cand("face", [100, 50, 140, 100], 0.9)  # body x 64..176, y 50..425
    torso = _cand("hog", [116, 260, 124, 270], 0.5, box=[80, 250, 170, 420])  # inside, no head
    beside = _cand("hog", [316, 60, 324, 70], 0.5, box=[280, 50, 360, 210])
    got = T.merge_candidates([face, torso, beside], s)
    assert [d.source for d in got] == ["face", "hog"]
    np.testing.assert_allclose(got[1].box, [280, 50, 360, 210])


def test_merge_boxes_stacked_halves_of_one_person():
    s = DetectSettings(score_threshold=0.0)

    def hog(box, score):
        b = np.asarray(box, np.float64)
        return _cand("hog", T.head_of("hog", b[0], b[1], b[2] - b[0], b[3] - b[1]), score, b)

    upper, lower = hog([100, 100, 170, 240], 0.4), hog([105, 230, 175, 370], 0.5)
    got = T.merge_candidates([upper, lower], s)
    assert len(got) == 1 and got[0].score == pytest.approx(0.5)  # same source: the best
    np.testing.assert_allclose(got[0].box, [100, 100, 175, 370])
    np.testing.assert_allclose(got[0].head, upper.head)  # the head of the upper half
    # side by side, far apart vertically, or of very different widths: separate people
    for other in ([200, 230, 270, 370], [105, 300, 175, 440], [60, 230, 210, 530]):
        assert len(T.merge_candidates([upper, hog(other, 0.5)], s)) == 2, other


def test_merge_threshold_min_size_and_max_people():
    cands = [_cand("face", [100 * k, 50, 100 * k + 40, 100], 0.1 * k) for k in range(1, 8)]
    got = T.merge_candidates(cands, DetectSettings(score_threshold=0.35))
    assert [round(d.score, 2) for d in got] == [0.7, 0.6, 0.5, 0.4]
    got = T.merge_candidates(cands, DetectSettings(score_threshold=0.0, max_people=2))
    assert [round(d.score, 2) for d in got] == [0.7, 0.6]
    small = _cand("hog", [500, 500, 510, 510], 0.9, box=[490, 490, 530, 559])  # 69 px tall
    got = T.merge_candidates([small], DetectSettings(score_threshold=0.0, min_size=70))
    assert got == []
    assert len(T.merge_candidates([small], DetectSettings(score_threshold=0.0, min_size=69))) == 1


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"min_size": -1}, "--min-size must be >= 0"),
        ({"score_threshold": 1.5}, "--score-threshold"),
        ({"max_people": 0}, "--max-people must be >= 1"),
        ({"sources": ("face", "yolo")}, "sources must be among"),
    ],
)
def test_settings_reject_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DetectSettings(**kw)


def test_build_detector_choices(tmp_path):
    assert T.build_detector("none") is None
    assert T.build_detector("hog").settings.sources == ("hog",)
    assert T.build_detector("hog").settings.hog_side == 960
    with pytest.raises(ValueError, match="needs --detector-model"):
        T.build_detector("dnn")
    with pytest.raises(ValueError, match="only used with --detector dnn"):
        T.build_detector("hog", model=tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="not found"):
        T.build_detector("auto", model=tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="must be one of"):
        T.build_detector("yolo")


# ------------------------------------------------------------------------------------- ONNX
def test_decode_both_layouts_by_hand():
    # YOLOv8: (1, 4 + 2 classes, 3 candidates), columns are candidates
    out = np.array(
        [[[50, 10, 30], [40, 10, 30], [20, 4, 10], [60, 4, 10], [0.9, 0.2, 0.1], [0.1, 0.9, 0.8]]],
        np.float32,
    )
    boxes, scores = N.decode_detections(out, 0)
    np.testing.assert_allclose(boxes[0], [40, 10, 60, 70])
    np.testing.assert_allclose(scores, [0.9, 0.2, 0.1], rtol=1e-6)
    boxes, scores = N.decode_detections(out, 1)
    np.testing.assert_allclose(scores, [0.1, 0.9, 0.8], rtol=1e-6)
    # NMS-free rows [x1, y1, x2, y2, score, class]
    rows = np.array([[[1, 2, 3, 4, 0.7, 0], [5, 6, 7, 8, 0.9, 2], [9, 9, 19, 29, 0.5, 0]]])
    boxes, scores = N.decode_detections(rows, 0)
    np.testing.assert_allclose(boxes, [[1, 2, 3, 4], [9, 9, 19, 29]])
    np.testing.assert_allclose(scores, [0.7, 0.5])
    with pytest.raises(DataError, match="cannot read detector output of shape"):
        N.decode_detections(np.zeros((1, 3, 5)), 0)


def _constant_onnx(path, output: np.ndarray, side: int = 64):
    """An ONNX network whose output is ``output`` whatever the (1, 3, side, side) input."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["c", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output.shape))],
        [
            numpy_helper.from_array(output.astype(np.float32), "c"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_detector_maps_letterboxed_boxes_back(tmp_path):
    # 64 px input; a 100 x 50 (w x h) image is letterboxed at r = 0.64 to 64 x 32, 16 px bands
    # one class; the second box overlaps the first; the third lies in the top grey band
    out = np.array(
        [[[32, 33, 10], [32, 33, 8], [32, 30, 8], [16, 15, 8], [0.9, 0.6, 0.2]]], np.float32
    )
    path = _constant_onnx(tmp_path / "yolo.onnx", out)
    det = T.build_detector("auto", DetectSettings(score_threshold=0.3), model=path)
    assert det.input_size == 64  # read from the file
    img = np.zeros((50, 100, 3), np.uint8)
    boxes, scores = det.raw(img)
    # by hand: input box (16, 24)-(48, 40) -> image ((16 - 0) / 0.64, (24 - 16) / 0.64) ...
    np.testing.assert_allclose(boxes[0], [25, 12.5, 75, 37.5], atol=1e-4)
    # the box in the band maps above the image: clipped to nothing, it is gone
    assert len(boxes) == 2 and scores.tolist() == pytest.approx([0.9, 0.6])
    found = det(img)
    assert [d.source for d in found] == ["dnn"]  # 0.6 overlaps 0.9 (NMS)
    np.testing.assert_allclose(found[0].box, [25, 12.5, 75, 37.5], atol=1e-4)
    assert found[0].score == pytest.approx(0.9)


def test_onnx_detector_nms_free_layout_and_person_class(tmp_path):
    rows = np.array([[[8, 24, 24, 40, 0.8, 1], [40, 20, 60, 44, 0.7, 0]]], np.float32)
    path = _constant_onnx(tmp_path / "e2e.onnx", rows)
    img = np.zeros((64, 64, 3), np.uint8)
    found = N.OnnxDetector(path, DetectSettings(), person_class=0)(img)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box, [40, 20, 60, 44], atol=1e-4)
    found = N.OnnxDetector(path, DetectSettings(), person_class=1)(img)
    np.testing.assert_allclose(found[0].box, [8, 24, 24, 40], atol=1e-4)
    found = N.OnnxDetector(path, DetectSettings(min_size=20), person_class=1)(img)
    assert found == []  # 16 px tall


def test_onnx_detector_bad_files(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a network")
    with pytest.raises(DataError, match="cannot read .*junk.onnx.* as an ONNX network"):
        N.OnnxDetector(tmp_path / "junk.onnx")
    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(DataError, match="must be an .onnx file"):
        N.OnnxDetector(tmp_path / "m.pt")


def test_draw_boxes_outlines_at_the_shown_scale():
    from ihmr.pose.show import COLOURS, draw_boxes

    img = np.zeros((100, 200, 3), np.uint8)
    # a box of the 400 x 200 original, drawn on this half-size copy: x 40..100, y 30..90
    out = draw_boxes(img, [[80, 60, 200, 180]], ["hog"], [float("nan")], scale=(0.5, 0.5))
    assert img.max() == 0  # the input is left alone
    assert tuple(out[60, 40]) == COLOURS["hog"] and tuple(out[60, 99]) == COLOURS["hog"]
    assert tuple(out[89, 70]) == COLOURS["hog"] and out[60, 70].max() == 0  # hollow
    assert out[:, :39].max() == 0 and out[:, 101:].max() == 0 and out[91:].max() == 0
