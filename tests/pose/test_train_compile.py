"""The training step compiles whole: no graph break (no host sync, no branch on tensor values)
for every loss configuration, and fixed shapes, so a second step (and epoch) reuses the graph.

Add a loss configuration to ``LOSS_CASES`` (``cfg.loss`` fields) and every test covers it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ihmr.body.testing import write_smpl_folder
from ihmr.pose.config import PoseTrainConfig

from .test_train import config, make_set

LOSS_CASES = {
    "mse": {"kind": "mse"},
    "gai": {"kind": "gai", "prior": "prior216.npz"},
    "bmc": {"kind": "bmc"},
    "bmc_mmhuman3d": {"kind": "bmc_mmhuman3d"},
    "bmc+keypoints_bmc": {"kind": "bmc", "keypoints": "bmc"},
    "mse+keypoints_bmc": {"kind": "mse", "keypoints": "bmc"},
    "bmc+keypoints_bmc per joint": {"kind": "bmc", "keypoints": "bmc", "bmc_per_joint": True},
}
B = 8


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A random body and a valid 216-d GMM prior (GAI)."""
    from ihmr.priors import GMMPrior

    root = tmp_path_factory.mktemp("compile")
    write_smpl_folder(root / "smpl", n_vertices=200)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 216, 216)) * 0.02
    GMMPrior(
        np.array([0.4, 0.6]),
        rng.normal(size=(2, 216)) * 0.1,
        a @ a.transpose(0, 2, 1) + 0.01 * np.eye(216),
    ).save(root / "prior216.npz")
    return root


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _step(root: Path, case: dict, all_valid: bool, amp: bool):
    from ihmr.body import load_body
    from ihmr.models.hmr import HMRHead
    from ihmr.pose.train import TrainStep, build_loss, warm_body

    cfg = PoseTrainConfig()
    cfg.data.root = str(root)
    for k, v in case.items():
        setattr(cfg.loss, k, v)
    body = load_body("neutral", root / "smpl")
    warm_body(body, torch.device("cpu"))
    torch.manual_seed(0)
    head = HMRHead(16, body.mean_params)
    return TrainStep(head, body, build_loss(cfg, all_valid), amp)


def _batch(seed: int, all_valid: bool):
    from ihmr.geometry import axis_angle_to_matrix

    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(B) if all_valid else (torch.arange(B) % 3 != 1).float()

    # some joints missing (confidence 0): the balanced keypoint losses weight them out
    def kp(n, k):
        return torch.cat(
            [
                torch.rand(B, n, k, generator=g) - 0.5,
                (torch.rand(B, n, 1, generator=g) > 0.2).float(),
            ],
            -1,
        )

    return torch.randn(B, 16, generator=g), {
        "pose": axis_angle_to_matrix(torch.randn(B, 24, 3, generator=g) * 0.2).reshape(B, 216),
        "betas": torch.randn(B, 10, generator=g),
        "valid": valid,
        "kp3d": kp(24, 3),
        "has3d": (torch.arange(B) % 2).float(),
        "kp2d": kp(49, 2),
    }


CASES = [
    pytest.param(c, v, id=f"{k}-{'all_valid' if v else 'masked'}")
    for k, c in LOSS_CASES.items()
    for v in (False, True)
]


@pytest.mark.parametrize("case,all_valid", CASES)
def test_step_has_no_graph_break(root, case, all_valid):
    step = _step(root, case, all_valid, amp=False)
    f, batch = _batch(0, all_valid)
    ex = torch._dynamo.explain(step)(f, batch)
    reasons = [r.reason.splitlines()[0] for r in ex.break_reasons]
    assert ex.graph_break_count == 0, reasons
    assert ex.graph_count == 1


def test_bf16_autocast_step_has_no_graph_break(root):
    step = _step(root, LOSS_CASES["bmc"], False, amp=True)
    ex = torch._dynamo.explain(step)(*_batch(0, False))
    assert (ex.graph_break_count, ex.graph_count) == (0, 1)


class _Counting:
    """A ``torch.compile`` backend that counts the graphs it is given; ``aot=True`` runs them
    through AOTAutograd (the backward is traced as a graph too), else eagerly (cheaper)."""

    def __init__(self, aot: bool = False) -> None:
        self.graphs, self.aot = 0, aot

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        if self.aot:
            from torch._dynamo.backends.debugging import aot_eager

            return aot_eager(gm, example_inputs)
        return gm.forward


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in LOSS_CASES.items()])
def test_second_step_reuses_the_compiled_graph(root, case):
    step = _step(root, case, False, amp=False)
    step.head.eval()  # no dropout: the compiled values can be compared with the eager ones
    eager_terms = step(*_batch(2, False))
    backend = _Counting()
    compiled = torch.compile(step, backend=backend, fullgraph=True)
    for seed in (1, 2, 3):  # new values, same shapes: no recompilation
        terms = compiled(*_batch(seed, False))
        terms[0].backward()
        assert torch.isfinite(terms).all()
        if seed == 2:  # same weights (the gradients are never applied)
            torch.testing.assert_close(terms, eager_terms, rtol=1e-5, atol=1e-6)
    assert backend.graphs == 1


@pytest.fixture(scope="module")
def masked_data(tmp_path_factory) -> Path:
    """Training sets where a third of the fits are invalid (has_smpl = 0): the masked path."""
    root = tmp_path_factory.mktemp("compile_train")
    for name, n, seed in (("h36m_train", 96, 0), ("coco_train", 48, 1)):
        make_set(root, name, n, seed)
        arrs = dict(np.load(root / f"{name}.npz"))
        arrs["has_smpl"] = (np.arange(n) % 3 != 1).astype(np.float64)
        np.savez(root / f"{name}.npz", **arrs)
    write_smpl_folder(root / "smpl", n_vertices=200)
    return root


def test_trainer_compiles_once_and_reads_the_device_only_at_log_steps(
    masked_data, tmp_path, monkeypatch
):
    """`ihmr train` with compile on: 2 epochs of 4 steps, balanced pose and keypoint losses,
    cosine schedule, EMA head, invalid fits, NaN guard and logging every 2 steps: exactly one
    graph, compiled with fullgraph=True, and in
    epoch 2 the trainer's code reads tensor values on the host only after steps 2 and 4."""
    import sys

    from ihmr.pose.train import train

    backend, seen, calls, reads = _Counting(aot=True), {}, [0], []
    real = torch.compile

    def fake_compile(fn, mode=None, fullgraph=False, **kw):
        seen.update(mode=mode, fullgraph=fullgraph)
        compiled = real(fn, backend=backend, fullgraph=fullgraph, **kw)

        def counted(*a):
            calls[0] += 1
            return compiled(*a)

        return counted

    # Host reads of tensor values made by ihmr's own code (not torch's: the CPU Adam reads its
    # step counter, a CPU tensor on every device), tagged with the number of steps run so far.
    counting = [False]
    for name in ("__bool__", "__float__", "__int__", "item", "tolist", "numpy"):
        orig = getattr(torch.Tensor, name)

        def read(self, *a, _orig=orig, **k):
            if counting[0] and "ihmr" in sys._getframe(1).f_code.co_filename.split("/")[-3:-1]:
                reads.append(calls[0])
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, read)

    def start_counting(epoch, row):
        counting[0] = epoch == 1  # the window: epoch 2 (the graph is compiled by then)

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = config(masked_data, tmp_path / "run", kind="bmc", loss__keypoints="bmc", optim__ema=0.9)
    cfg.optim.epochs, cfg.optim.schedule, cfg.log_every = 2, "cosine", 2
    cfg.compile = "reduce-overhead"
    res = train(cfg, callback=start_counting)
    assert seen == {"mode": "reduce-overhead", "fullgraph": True}
    assert backend.graphs == 1
    assert len(res.history) == 2 and calls[0] == 8
    assert all(np.isfinite(r["loss_total"]) for r in res.history)
    # epoch 2 is steps 5..8: reads after step 6 and 8 (log steps, end of epoch), none after 5, 7
    assert reads and set(reads) <= {6, 8} and 6 in reads, reads
    # the same run without compile gives the same losses (the graph is the eager step)
    monkeypatch.setattr(torch, "compile", real)
    counting[0] = False
    cfg.compile, cfg.out = "off", str(tmp_path / "eager")
    ref = train(cfg)
    for a, b in zip(res.history, ref.history, strict=True):
        assert a["loss_total"] == pytest.approx(b["loss_total"], rel=1e-4)


def test_eval_prediction_source_has_no_graph_break(root):
    """`ihmr eval`'s per-chunk prediction (head + full body forward with vertices) is one graph;
    the loop around it is not compiled (docs/ihmr_train_demo.md says why)."""
    from ihmr.body import load_body
    from ihmr.models.hmr import HMRHead
    from ihmr.pose.evaluate import predictions_from_head

    body = load_body("neutral", root / "smpl")
    feats = torch.randn(40, 16)
    source = predictions_from_head(HMRHead(16, body.mean_params), feats, body)
    with torch.no_grad():
        ex = torch._dynamo.explain(lambda f: source(0, 32))(feats)
    assert (ex.graph_break_count, ex.graph_count) == (0, 1), [r.reason for r in ex.break_reasons]
