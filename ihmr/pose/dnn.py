"""A person detector from a local ONNX file, run by OpenCV's DNN module (``ihmr predict
--detector-model FILE.onnx``): nothing downloaded at run time, no package beyond OpenCV.

Read layouts: the YOLOv8 / YOLO11 export of ultralytics (one output (1, 4 + C, N): box centre
and size in input pixels, then C class scores) and the NMS-free layout (1, N, 6) ``[x1, y1, x2,
y2, score, class]`` (YOLOv10 and later exports). The image is letterboxed to the network's square
input (grey 114 padding, RGB, values / 255, as ultralytics trains), boxes of class
``person_class`` (0 in COCO) are mapped back to the image, suppressed with
:func:`ihmr.pose.detect.nms` (IoU 0.45), filtered by the :class:`DetectSettings` and reported as
:class:`Detection` s with source ``dnn``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from .detect import nms
from .detectors import Detection, DetectSettings


class OnnxDetector:
    """A person detector from a local ONNX file through ``cv2.dnn`` (module docstring).

    ``input_size`` is the network's square input side (640 for ultralytics' exports; read from
    the file where it is fixed there). Raises :class:`DataError` when the file is missing or
    OpenCV cannot read it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: DetectSettings | None = None,
        person_class: int = 0,
        input_size: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.settings = settings or DetectSettings()
        self.person_class = int(person_class)
        self.notes: list[str] = []
        if not self.path.is_file():
            raise FileNotFoundError(f"detector model {str(self.path)!r} not found")
        if self.path.suffix.lower() != ".onnx":
            raise DataError(f"detector model {str(self.path)!r} must be an .onnx file")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(self.path))
        except cv2.error as exc:
            raise DataError(
                f"OpenCV cannot read {str(self.path)!r} as an ONNX network: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self.input_size = int(input_size or self._fixed_input_side() or 640)

    def _fixed_input_side(self) -> int | None:
        """The square input side fixed in the ONNX file, where it is (read with ``onnx`` when
        installed; else None)."""
        try:
            import onnx
        except ImportError:
            return None
        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
            dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
        except Exception:  # noqa: BLE001 - OpenCV read it; a missing size just means default
            return None
        return dims[2] if len(dims) == 4 and dims[2] > 0 and dims[2] == dims[3] else None

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (K, 4) in ``image`` px (clipped) and scores (K,), before NMS."""
        h, w = image.shape[:2]
        s = self.input_size
        r = min(s / h, s / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        top, left = (s - nh) // 2, (s - nw) // 2
        canvas = np.full((s, s, 3), 114, np.uint8)
        canvas[top : top + nh, left : left + nw] = cv2.resize(
            image, (nw, nh), interpolation=cv2.INTER_LINEAR
        )
        blob = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        self.net.setInput(np.ascontiguousarray(blob))
        try:
            out = np.asarray(self.net.forward(), np.float64)
        except cv2.error as exc:
            raise DataError(
                f"{str(self.path)!r} did not run on a {s} x {s} input ("
                f"{str(exc).strip().splitlines()[-1]}); install the onnx package "
                "so the input size is read from the file"
            ) from None
        boxes, scores = decode_detections(out, self.person_class)
        boxes = (boxes - np.array([left, top, left, top])) / r
        boxes = (
            np.stack(
                [
                    np.clip(boxes[:, 0], 0, w),
                    np.clip(boxes[:, 1], 0, h),
                    np.clip(boxes[:, 2], 0, w),
                    np.clip(boxes[:, 3], 0, h),
                ],
                1,
            )
            if len(boxes)
            else boxes.reshape(0, 4)
        )
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[ok], scores[ok]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        st = self.settings
        boxes, scores = self.raw(image)
        keep = [
            i
            for i in nms(boxes, scores, 0.45)
            if scores[i] >= st.score_threshold and boxes[i, 3] - boxes[i, 1] >= st.min_size
        ]
        return [
            Detection(boxes[i], float(scores[i]), "dnn", ("dnn",)) for i in keep[: st.max_people]
        ]


def decode_detections(out: np.ndarray, person_class: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (K, 4) [x1, y1, x2, y2] in network-input px and scores (K,) from a detector
    output: (1, 4 + C, N) YOLOv8/YOLO11 (``cx, cy, w, h`` then C class scores per column) or
    (1, N, 6) NMS-free ``[x1, y1, x2, y2, score, class]`` rows."""
    a = np.asarray(out, np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise DataError(
            f"cannot read detector output of shape {tuple(out.shape)}: expected "
            "(1, 4 + classes, N) (YOLOv8/YOLO11) or (1, N, 6) (NMS-free)"
        )
    if a.shape[1] == 6 and a.shape[0] != 6:
        keep = np.round(a[:, 5]).astype(int) == person_class
        return a[keep, :4], a[keep, 4]
    if a.shape[0] > 4 and a.shape[0] - 4 > person_class:
        cx, cy, bw, bh = a[:4]
        scores = a[4 + person_class]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        return boxes, scores
    raise DataError(
        f"cannot read detector output of shape {tuple(out.shape)} with person class "
        f"{person_class}: expected (1, 4 + classes, N) or (1, N, 6)"
    )
