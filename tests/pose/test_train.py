"""`ihmr train` on cached features: end to end, resume, NaN guard, data checks (tiny, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ihmr.body.testing import write_smpl_folder
from ihmr.errors import ConfigError, DataError
from ihmr.pose.config import DatasetConfig, PoseTrainConfig
from ihmr.pose.features import write_feature_store
from ihmr.pose.spin_data import labels_fingerprint
from ihmr.runs import NonFiniteLossError

D = 16


def make_set(
    root: Path,
    name: str,
    n: int,
    seed: int,
    source: str = "src0",
    fingerprint_of: np.ndarray | None = None,
    gender: bool = False,
) -> DatasetConfig:
    """A SPIN-format label file plus a feature store (features a fixed function of the pose)."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.2, (n, 72))
    imgname = np.array([f"{name}/{i:05d}.jpg" for i in range(n)])
    arrs = dict(
        imgname=imgname,
        center=rng.uniform(100, 150, (n, 2)),
        scale=rng.uniform(0.8, 1.2, n),
        part=np.concatenate([rng.uniform(60, 180, (n, 24, 2)), np.ones((n, 24, 1))], -1),
        S=np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], -1),
        pose=pose,
        shape=rng.normal(0, 0.5, (n, 10)),
        has_smpl=np.ones(n),
    )
    if gender:
        arrs["gender"] = np.array(["m", "f"])[rng.integers(0, 2, n)]
    np.savez(root / f"{name}.npz", **arrs)
    w = np.random.default_rng(99).normal(size=(72, D))
    feats = np.maximum(pose @ w, 0) + 0.01 * rng.normal(size=(n, D))
    fp = labels_fingerprint(imgname if fingerprint_of is None else fingerprint_of)
    write_feature_store(
        root / f"{name}_feats",
        feats,
        dataset=name,
        labels_fingerprint=fp,
        source_checkpoint="test",
        source_fingerprint=source,
    )
    return DatasetConfig(name, f"{name}.npz", f"{name}_feats")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    make_set(root, "h36m_train", 96, 0)
    make_set(root, "coco_train", 48, 1)
    make_set(root, "3dpw_test", 40, 2, gender=True)
    write_smpl_folder(root / "smpl", n_vertices=200)
    return root


def config(data: Path, out: Path, **kw) -> PoseTrainConfig:
    cfg = PoseTrainConfig()
    cfg.data.root = str(data)
    cfg.data.train = [
        DatasetConfig("h36m", "h36m_train.npz", "h36m_train_feats", weight=0.7),
        DatasetConfig("coco", "coco_train.npz", "coco_train_feats", weight=0.3),
    ]
    cfg.optim.epochs, cfg.optim.batch_size = 3, 16
    cfg.data.samples_per_epoch = 64  # 4 steps per epoch: the tests stay fast
    cfg.out, cfg.smpl_dir, cfg.progress, cfg.device = str(out), str(data / "smpl"), False, "cpu"
    cfg.loss.kind = kw.pop("kind", "bmc")
    for k, v in kw.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    return cfg


def _rows(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in history]


def test_end_to_end_train_and_eval(data, tmp_path):
    from ihmr.models.hmr import load_head
    from ihmr.pose.train import train

    cfg = config(
        data,
        tmp_path / "run",
        kind="mse",
        eval__labels="3dpw_test.npz",
        eval__features="3dpw_test_feats",
    )
    res = train(cfg)
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and (tmp_path / "run" / "metrics.csv").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    # the saved head is what was trained, and eval used it on the test features
    head = load_head(res.checkpoint)
    assert head.feature_dim == D
    assert set(res.eval_metrics) >= {"bMPVPE", "bMPJPE", "bPA-MPJPE", "MPJPE"}
    assert (tmp_path / "run" / "eval" / "metrics.json").is_file()
    # independent: the saved head on the test features, vertex errors by hand, predicted and
    # true meshes through each sample's ground-truth gender (the IHMR release's MPVPE),
    # averaged per region of the saved split
    from ihmr.body import forward_gendered, load_bodies
    from ihmr.pose.features import FeatureStore

    z = np.load(data / "3dpw_test.npz")
    bodies = load_bodies(data / "smpl")
    with torch.no_grad():
        out = head.eval()(FeatureStore(data / "3dpw_test_feats").tensor().float())
        pv = forward_gendered(bodies, z["gender"], out.betas, out.rotmat).vertices.double()
        gv = forward_gendered(
            bodies,
            z["gender"],
            torch.as_tensor(z["shape"]).float(),
            torch.as_tensor(z["pose"]).float(),
        ).vertices.double()
    per = 1000 * (pv - gv).norm(dim=-1).mean(-1).numpy()  # (40,) mm
    region = np.load(tmp_path / "run" / "eval" / "split.npz")["region"]
    balanced = np.mean([per[region == r].mean() for r in np.unique(region)])
    assert res.eval_metrics["MPVPE"] == pytest.approx(per.mean(), rel=1e-4)
    assert res.eval_metrics["bMPVPE"]["all"] == pytest.approx(balanced, rel=1e-4)
    # training reduces the loss (fixed seed; 12 steps)
    assert res.history[-1]["loss_total"] < res.history[0]["loss_total"]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_after_kill_equals_uninterrupted(data, tmp_path, schedule):
    from ihmr.pose.train import train

    full = train(config(data, tmp_path / "full", optim__schedule=schedule))

    def kill(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt  # killed after epoch 1's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(config(data, tmp_path / "killed", optim__schedule=schedule), callback=kill)
    resumed = train(config(data, tmp_path / "killed", optim__schedule=schedule), resume=True)

    assert _rows(resumed.history) == _rows(full.history)
    a = torch.load(full.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    for k in a["head"]:
        torch.testing.assert_close(b["head"][k], a["head"][k], rtol=0, atol=0)
    assert a["sigma"] == b["sigma"] and a["sigma"] != 1.0  # sigma was learned and resumed


def test_cosine_schedule_sets_the_rate_of_every_step(data, tmp_path, monkeypatch):
    from ihmr.pose import train as train_mod

    seen = []
    step = torch.optim.Adam.step

    def record(self, *a, **k):
        seen.append((self.param_groups[0]["lr"], self.param_groups[-1]["lr"]))
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", record)
    cfg = config(data, tmp_path / "run", optim__schedule="cosine")
    train_mod.train(cfg)
    total = len(seen)
    expected = [cfg.optim.lr * 0.5 * (1 + np.cos(np.pi * t / total)) for t in range(total)]
    np.testing.assert_allclose([h for h, _ in seen], expected, rtol=1e-12)
    assert all(sg == cfg.optim.sigma_lr for _, sg in seen)  # sigma's rate stays constant
    assert seen[0][0] == cfg.optim.lr and seen[-1][0] < 0.05 * cfg.optim.lr


def test_nan_loss_stops_with_location_and_keeps_last_checkpoint(data, tmp_path, monkeypatch):
    from ihmr.pose import train as train_mod
    from ihmr.runs import read_checkpoint

    state = {"epoch": 0}
    forward = train_mod.TrainStep.forward

    def poisoned(self, features, batch):
        terms = forward(self, features, batch)
        return terms * float("nan") if state["epoch"] >= 1 else terms

    monkeypatch.setattr(train_mod.TrainStep, "forward", poisoned)
    cfg = config(data, tmp_path / "run", kind="mse")
    cfg.log_every = 2
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, global step \d+, batch 0.*last.pt"):
        train_mod.train(cfg, callback=lambda e, r: state.update(epoch=e))
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1  # the last good checkpoint is intact
    assert all(torch.isfinite(v).all() for v in ckpt["state"]["head"].values())


def test_only_non_finite_values_are_reported_as_such(data, tmp_path, monkeypatch):
    """The loss library's NonFiniteError becomes the trainer's located NaN message; any other
    ValueError is a bug and must surface as itself, not as "non-finite values"."""
    from ihmr.errors import NonFiniteError
    from ihmr.pose import train as train_mod

    def bug(self, features, batch):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(train_mod.TrainStep, "forward", bug)
    with pytest.raises(ValueError, match="broadcast") as exc:
        train_mod.train(config(data, tmp_path / "a", kind="mse"))
    assert not isinstance(exc.value, NonFiniteLossError)

    def nan_input(self, features, batch):
        raise NonFiniteError("pred contains 3 non-finite value(s) (NaN or inf)")

    monkeypatch.setattr(train_mod.TrainStep, "forward", nan_input)
    with pytest.raises(
        NonFiniteLossError,
        match=r"non-finite values at epoch 1, global step 1, "
        r"batch 0 \(pred contains 3",
    ):
        train_mod.train(config(data, tmp_path / "b", kind="mse"))


def test_features_of_other_samples_are_rejected(data, tmp_path):
    from ihmr.pose.train import train

    other = make_set(tmp_path, "lsp_train", 32, 5, fingerprint_of=np.array(["x.jpg"] * 32))
    cfg = config(data, tmp_path / "run")
    cfg.data.train = [
        DatasetConfig("lsp", str(tmp_path / other.labels), str(tmp_path / other.features))
    ]
    with pytest.raises(DataError, match="different sample list"):
        train(cfg)


def test_features_of_another_backbone_are_rejected(data, tmp_path):
    from ihmr.pose.train import train

    other = make_set(tmp_path, "mpii_train", 32, 6, source="another")
    cfg = config(data, tmp_path / "run")
    cfg.data.train.append(
        DatasetConfig("mpii", str(tmp_path / other.labels), str(tmp_path / other.features))
    )
    with pytest.raises(DataError, match="same checkpoint"):
        train(cfg)


def test_gai_prior_of_wrong_dimension_is_rejected(data, tmp_path):
    from ihmr.pose.train import train
    from ihmr.priors import GMMPrior

    # a prior fitted on axis-angle poses (72-d), not on rotation matrices (216-d)
    prior = GMMPrior(np.ones(2) / 2, np.zeros((2, 72)), np.tile(np.eye(72), (2, 1, 1)))
    prior.save(tmp_path / "prior.npz")
    cfg = config(data, tmp_path / "run", kind="gai", loss__prior=str(tmp_path / "prior.npz"))
    with pytest.raises(DataError, match="dimension 72"):
        train(cfg)


def test_config_errors(data, tmp_path):
    from ihmr.config import load_config
    from ihmr.pose.train import train

    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        load_config(PoseTrainConfig, None, ["optim.batchsize=4"])
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config(data, tmp_path / "none"), resume=True)


def test_epoch_indices_follow_the_mix_and_are_deterministic():
    from ihmr.pose.train_data import TrainSet, epoch_indices

    ts = TrainSet(torch.zeros(1000, 2), {}, [0, 800], [800, 200], [0.25, 0.75], ["a", "b"], "fp")
    a = epoch_indices(ts, 3, 0, 100, samples=20000)
    assert a.shape == (200, 100)
    assert torch.equal(a, epoch_indices(ts, 3, 0, 100, samples=20000))
    assert not torch.equal(a, epoch_indices(ts, 4, 0, 100, samples=20000))
    share_b = (a >= 800).double().mean().item()
    assert abs(share_b - 0.75) < 0.02  # binomial sd 0.003
    # two ranks get disjoint halves of the same global draw
    r0 = epoch_indices(ts, 3, 0, 50, samples=20000, world_size=2, rank=0)
    r1 = epoch_indices(ts, 3, 0, 50, samples=20000, world_size=2, rank=1)
    assert torch.equal(torch.stack([r0, r1], 1).reshape(-1), a.reshape(-1))
    single = TrainSet(torch.zeros(64, 2), {}, [0], [64], [1.0], ["a"], "fp")
    perm = epoch_indices(single, 0, 0, 16)
    assert sorted(perm.reshape(-1).tolist()) == list(range(64))


def test_bf16_autocast_path_runs_on_cpu_and_matches_float32(data, tmp_path):
    """The GPU's mixed-precision path (bf16 head, float32 losses and body), run on the CPU."""
    from ihmr.pose.train import train

    runs = {}
    for amp in ("off", "bf16"):
        cfg = config(data, tmp_path / amp, kind="mse")
        cfg.optim.epochs, cfg.amp = 1, amp
        runs[amp] = train(cfg)
    assert runs["bf16"].info["amp"] and not runs["off"].info["amp"]
    a, b = runs["off"].history[0], runs["bf16"].history[0]
    assert b["loss_total"] == pytest.approx(a["loss_total"], rel=0.05)
    assert b["loss_pose"] == pytest.approx(a["loss_pose"], rel=0.05)


# The head's dropout draws its masks from each process's own generator, so two ranks cannot
# reproduce one process's masks; it is switched off (in both runs) to compare the DDP arithmetic.
WORKER = """
import sys, torch
torch.nn.Dropout.forward = lambda self, x: x
from ihmr.config import load_config
from ihmr.pose.config import PoseTrainConfig
from ihmr.pose.train import train
torch.set_num_threads(1)
res = train(load_config(PoseTrainConfig, sys.argv[1]))
torch.save({"sigma": res.history[-1]["sigma"], "loss": res.history[-1]["loss_total"]}, sys.argv[2])
"""


def test_ddp_two_cpu_processes_match_one_process(data, tmp_path, monkeypatch):
    """torchrun-style DDP on the CPU (gloo), 2 ranks x batch 8, equals one process with batch 16:
    the ranks take interleaved halves of the same global draw, BMC compares each prediction with
    the global batch's targets, gradients (sigma's included) are averaged. A DDP run that used
    only local targets in BMC, skipped sigma's all-reduce or trained each rank on all data would
    end with other weights and another sigma."""
    import os
    import socket
    import subprocess
    import sys

    from ihmr.config import save_config
    from ihmr.pose.train import train

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cfg = config(data, out, kind="bmc")
    cfg.optim.epochs, cfg.optim.batch_size = 2, 8
    save_config(cfg, tmp_path / "cfg.yaml")
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(tmp_path / "cfg.yaml"),
                    str(tmp_path / f"sigma{rank}.pt"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    logs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    s0 = torch.load(tmp_path / "sigma0.pt")
    s1 = torch.load(tmp_path / "sigma1.pt")
    assert s0 == s1 and s0["sigma"] != 1.0  # learned, and identical on both ranks
    assert (out / "head.pt").is_file() and len(
        (out / "metrics.jsonl").read_text().splitlines()
    ) == 2

    monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: x)
    one_cfg = config(data, tmp_path / "one", kind="bmc")
    one_cfg.optim.epochs, one_cfg.optim.batch_size = 2, 16
    one = train(one_cfg)
    assert one.history[-1]["sigma"] == pytest.approx(s0["sigma"], rel=1e-4)
    assert one.history[-1]["loss_total"] == pytest.approx(s0["loss"], rel=1e-4)
    a = torch.load(one.checkpoint, weights_only=True)
    b = torch.load(out / "head.pt", weights_only=True)
    for k in a["head"]:
        torch.testing.assert_close(b["head"][k], a["head"][k], rtol=1e-4, atol=1e-5)


def test_ema_head_is_the_average_of_the_steps_and_resumes_exactly(data, tmp_path, monkeypatch):
    """optim.ema: head.pt holds the warmed-up EMA of the head's weights (the recurrence
    ema <- d_t ema + (1 - d_t) w_t, d_t = min(0.9, (1 + t) / (10 + t)), recomputed here from the
    weights seen around every step), and a killed run resumed ends with the same EMA."""
    from ihmr.pose import train as train_mod

    seen, saved = [], []
    step = torch.optim.Adam.step

    def record(self, *a, **k):
        if not seen:
            seen.append([p.detach().clone() for p in self.param_groups[0]["params"]])
        out = step(self, *a, **k)
        seen.append([p.detach().clone() for p in self.param_groups[0]["params"]])
        return out

    save_head = train_mod._save_head
    monkeypatch.setattr(torch.optim.Adam, "step", record)
    monkeypatch.setattr(
        train_mod,
        "_save_head",
        lambda path, head, *a: (
            saved.append([p.detach().clone() for p in head.parameters()])
            or save_head(path, head, *a)
        ),
    )
    full = train_mod.train(config(data, tmp_path / "full", optim__ema=0.9, kind="mse"))
    ema = seen[0]
    for t, w in enumerate(seen[1:]):
        d = min(0.9, (1 + t) / (10 + t))
        ema = [d * e + (1 - d) * x for e, x in zip(ema, w, strict=True)]
    for got, want in zip(saved[0], ema, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert any(
        not torch.allclose(g, x) for g, x in zip(saved[0], seen[-1], strict=True)
    )  # not the last

    def kill(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_mod.train(
            config(data, tmp_path / "killed", optim__ema=0.9, kind="mse"), callback=kill
        )
    resumed = train_mod.train(
        config(data, tmp_path / "killed", optim__ema=0.9, kind="mse"), resume=True
    )
    a = torch.load(full.checkpoint, weights_only=True)["head"]
    b = torch.load(resumed.checkpoint, weights_only=True)["head"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)


def test_balanced_keypoints_train_and_log_their_sigmas(data, tmp_path):
    from ihmr.pose.train import train

    res = train(config(data, tmp_path / "run", loss__keypoints="bmc", optim__epochs=1))
    row = res.history[-1]
    assert {"sigma", "sigma_kp3d", "sigma_kp2d"} <= set(row)
    assert row["sigma_kp3d"] != 0.05 and np.isfinite(row["loss_keypoints3d"])  # learned
    with pytest.raises(ConfigError, match="optim.ema"):
        train(config(data, tmp_path / "bad", optim__ema=1.0))
    with pytest.raises(ConfigError, match="loss.init_noise_sigma"):
        train(config(data, tmp_path / "bad2", loss__init_noise_sigma=0.0))
