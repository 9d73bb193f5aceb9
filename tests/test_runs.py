"""Run machinery: resume equivalence, atomic checkpoints, NaN guard, metric logs, RNG round trip."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from ihmr.runs import (
    NonFiniteLossError,
    RunDir,
    check_loss,
    load_checkpoint,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ihmr.training import iter_batches


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
        self.sigma = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(64, generator=g)


def _train(run: RunDir, epochs: int, crash_in_epoch: int | None = None, resume: bool = False):
    """A training loop using every RNG the machinery must restore: torch (dropout, init), numpy
    and Python (augmentation noise) and an explicit shuffling generator."""
    torch.manual_seed(123 if not resume else 999)  # a resumed process starts from other states
    np.random.seed(5 if not resume else 77)
    random.seed(3 if not resume else 44)
    model = Tiny()
    opt = torch.optim.Adam(
        [{"params": model.net.parameters()}, {"params": [model.sigma], "lr": 1e-2}], lr=1e-2
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    shuffle = torch.Generator().manual_seed(7 if not resume else 8)
    objects = {"model": model, "optimizer": opt, "scheduler": sched}
    start, best = 0, {"value": float("inf")}
    if resume:
        ckpt = load_checkpoint(run.last, objects, generators={"shuffle": shuffle})
        start, best = ckpt["epoch"], ckpt["best"]
        run.truncate_metrics(start)
    x, y = _data()
    step = 0
    for epoch in range(start + 1, epochs + 1):  # numbered from 1
        model.train()
        for b, idx in enumerate(iter_batches(len(x), 16, shuffle)):
            if crash_in_epoch == epoch and b == 2:
                raise KeyboardInterrupt  # killed mid-epoch
            xb = x[idx] + 0.01 * torch.as_tensor(np.random.randn(len(idx), 4), dtype=torch.float32)
            xb = xb * (1 + 0.01 * random.random())
            loss = ((model(xb) - y[idx]) ** 2).mean() / model.sigma.exp() + model.sigma
            check_loss(loss, epoch=epoch, step=step, batch=b, last_checkpoint=run.last)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        sched.step()
        with torch.no_grad():
            val = float(((model.eval()(x) - y) ** 2).mean())
        if val < best["value"]:
            best = {"value": val, "epoch": epoch}
        run.log_metrics(epoch, {"val_mse": val, "lr": sched.get_last_lr()[0]})
        run.save(objects, epoch=epoch, best=best, generators={"shuffle": shuffle})
    return model, best


def test_resume_equals_uninterrupted(tmp_path):
    full, best_full = _train(RunDir(tmp_path / "a", main=True), epochs=5)
    run_b = RunDir(tmp_path / "b", main=True)
    with pytest.raises(KeyboardInterrupt):
        _train(run_b, epochs=5, crash_in_epoch=3)
    assert read_checkpoint(run_b.last)["epoch"] == 2
    resumed, best_res = _train(run_b, epochs=5, resume=True)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert best_full == best_res
    log_a = (tmp_path / "a" / "metrics.jsonl").read_text()
    log_b = (tmp_path / "b" / "metrics.jsonl").read_text()
    assert log_a == log_b and len(log_a.splitlines()) == 5
    assert (tmp_path / "a" / "metrics.csv").read_text() == (
        tmp_path / "b" / "metrics.csv"
    ).read_text()


def test_resume_without_rng_restore_differs(tmp_path):
    """Control: the equivalence above is not vacuous (dropout and shuffling do depend on RNG)."""
    full, _ = _train(RunDir(tmp_path / "a", main=True), epochs=3)
    run_b = RunDir(tmp_path / "b", main=True)
    with pytest.raises(KeyboardInterrupt):
        _train(run_b, epochs=3, crash_in_epoch=2)
    ckpt = read_checkpoint(run_b.last)
    ckpt["rng"]["torch"] = torch.manual_seed(31337).get_state()
    torch.save(ckpt, run_b.last)
    resumed, _ = _train(run_b, epochs=3, resume=True)
    assert not torch.equal(full.net[0].weight, resumed.net[0].weight)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = nn.Linear(3, 1)
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": model}, epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": nn.Linear(3, 1)}, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    m2 = nn.Linear(3, 1)
    assert load_checkpoint(path, {"model": m2}, restore_rng=False)["epoch"] == 1
    assert torch.equal(m2.weight, model.weight)


def test_nan_guard_names_step_batch_and_checkpoint(tmp_path):
    ckpt = tmp_path / "last.pt"
    save_checkpoint(ckpt, {"m": nn.Linear(2, 1)}, epoch=3)
    assert check_loss(torch.tensor(1.5), epoch=3, step=10, batch=2, last_checkpoint=ckpt) == 1.5
    with pytest.raises(NonFiniteLossError) as err:
        check_loss(torch.tensor(float("nan")), epoch=3, step=41, batch=7, last_checkpoint=ckpt)
    msg = str(err.value)
    assert "step 41" in msg and "batch 7" in msg and "epoch 3" in msg and str(ckpt) in msg
    with pytest.raises(NonFiniteLossError, match="no checkpoint written yet"):
        check_loss(float("inf"), epoch=0, step=0, batch=0, last_checkpoint=tmp_path / "none.pt")


def test_nan_in_training_keeps_last_good_checkpoint(tmp_path):
    run = RunDir(tmp_path, main=True)
    model = nn.Linear(2, 1)
    run.save({"model": model}, epoch=1)
    good = run.last.read_bytes()
    x = torch.tensor([[float("nan"), 1.0]])
    with pytest.raises(NonFiniteLossError, match="batch 0"):
        check_loss(model(x).sum(), epoch=1, step=5, batch=0, last_checkpoint=run.last)
    assert run.last.read_bytes() == good


def test_rng_state_round_trip():
    gen = torch.Generator().manual_seed(3)
    state = rng_state({"g": gen})
    a = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    torch.rand(5), np.random.rand(5), random.random(), torch.rand(4, generator=gen)
    set_rng_state(state, {"g": gen})
    b = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert torch.equal(a[3], b[3])


def test_metrics_logs_and_non_main_rank_writes_nothing(tmp_path):
    run = RunDir(tmp_path / "r", main=True)
    run.log_metrics(1, {"loss": 1.0})
    run.log_metrics(2, {"loss": 0.5, "sigma": torch.tensor(2.0)})
    rows = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows == [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, "sigma": 2.0}]
    csv_lines = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert csv_lines == ["epoch,loss,sigma", "1,1.0,", "2,0.5,2.0"]
    other = RunDir(tmp_path / "other", main=False)
    other.log_metrics(0, {"loss": 1.0})
    assert other.save({"m": nn.Linear(1, 1)}, epoch=1) is None
    assert not (tmp_path / "other").exists()


def test_missing_and_corrupt_checkpoint_errors(tmp_path):
    from ihmr.errors import DataError

    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.pt' is truncated or not a checkpoint"):
        read_checkpoint(bad)


def test_progress_bar_and_optional_tensorboard(tmp_path, monkeypatch):
    from ihmr.runs import DistInfo, dist_info
    from ihmr.training import Progress, log_scalars, tensorboard_writer

    with Progress(3, "epoch 1/1", enabled=True) as bar:
        for _ in range(3):
            bar.advance(loss=0.5, sigma=2.0)
    assert bar._progress.finished and bar._progress.tasks[0].completed == 3
    with Progress(3, enabled=False) as bar:
        bar.advance(loss=1.0)  # disabled: a no-op
    writer = tensorboard_writer(tmp_path / "tb")
    log_scalars(writer, 0, {"loss": 1.0})  # None when TensorBoard is not installed: a no-op

    class Recorder:
        def __init__(self):
            self.calls = []

        def add_scalar(self, *args):
            self.calls.append(args)

    rec = Recorder()
    log_scalars(rec, 7, {"loss": 0.5, "epochs": 2, "flag": True, "name": "x", "none": None}, "val/")
    assert rec.calls == [("val/loss", 0.5, 7), ("val/epochs", 2, 7)]  # numbers only, no bools
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert dist_info() == DistInfo(0, 1, 0) and dist_info().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_info() == DistInfo(3, 4, 1) and not dist_info().is_main


def test_torchrun_env_decides_the_writer(tmp_path, monkeypatch):
    from ihmr.runs import init_distributed, is_main

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")  # a rank > 0 without a process group: reads only
    assert not is_main()
    assert init_distributed().rank == 1
    run = RunDir(tmp_path / "r1")
    run.log_metrics(0, {"loss": 1.0})
    assert not (tmp_path / "r1").exists()
    monkeypatch.setenv("RANK", "x")
    from ihmr.errors import IhmrError

    with pytest.raises(IhmrError, match="torchrun"):
        init_distributed()


# --------------------------------------------------------------------------- the shared epoch loop
def _fit(run: RunDir, epochs: int, resume: bool = False):
    """A tiny trainer on training.fit + training.train_steps: dropout, shuffling, a schedule,
    selection on validation; what the three benchmark trainers do, in 20 lines."""
    from ihmr.training import fit, train_steps

    torch.manual_seed(123 if not resume else 999)  # a resumed process starts from other states
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    shuffle = torch.Generator().manual_seed(7 if not resume else 8)
    objects = {"model": model, "optimizer": opt, "scheduler": sched}
    start, best = 0, None
    if resume:
        ckpt = load_checkpoint(run.last, objects, generators={"shuffle": shuffle})
        start, best = ckpt["epoch"], ckpt["best"]
    x, y = _data()

    def train_epoch(epoch):
        model.train()
        loss = train_steps(
            iter_batches(len(x), 16, shuffle),
            lambda i: ((model(x[i]) - y[i]) ** 2).mean(),
            opt,
            run=run,
            epoch=epoch,
            steps=4,
            progress=False,
        )
        sched.step()
        return {"train_loss": loss}

    def evaluate(epoch, row):
        with torch.no_grad():
            val = float(((model.eval()(x) - y) ** 2).mean())
        return {**row, "val_mse": val}, val, lambda: {"model": model.state_dict(), "epoch": epoch}

    history, best = fit(
        run,
        objects,
        epochs=epochs,
        start=start,
        train_epoch=train_epoch,
        evaluate=evaluate,
        best=best,
        metric="val_mse",
        generators={"shuffle": shuffle},
    )
    return model, history, best


def test_fit_numbers_epochs_from_1_selects_on_validation_and_resumes_exactly(tmp_path, monkeypatch):
    full, history, best = _fit(RunDir(tmp_path / "a", main=True), epochs=4)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    vals = [r["val_mse"] for r in history]
    assert best == {"metric": "val_mse", "value": min(vals), "epoch": 1 + int(np.argmin(vals))}
    assert torch.load(tmp_path / "a" / "best.pt", weights_only=True)["epoch"] == best["epoch"]
    assert read_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 4  # epochs done

    # killed after epoch 3's metrics row, before its checkpoint: the resumed run redoes epoch 3
    run_b, save = RunDir(tmp_path / "b", main=True), RunDir.save

    def die_at_3(self, objects, **kw):
        if kw["epoch"] == 3:
            raise KeyboardInterrupt
        return save(self, objects, **kw)

    monkeypatch.setattr(RunDir, "save", die_at_3)
    with pytest.raises(KeyboardInterrupt):
        _fit(run_b, epochs=4)
    monkeypatch.setattr(RunDir, "save", save)
    assert [r["epoch"] for r in run_b.read_metrics()] == [1, 2, 3]
    assert read_checkpoint(run_b.last)["epoch"] == 2
    resumed, history_b, best_b = _fit(run_b, epochs=4, resume=True)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert history_b == history and best_b == best
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (
        tmp_path / "b" / "metrics.jsonl"
    ).read_text()


def test_train_steps_names_epoch_and_global_step_from_1(tmp_path):
    from ihmr.training import train_steps

    run = RunDir(tmp_path, main=True)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [torch.ones(1, 2), torch.ones(1, 2), torch.full((1, 2), float("nan"))]
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, global step 9, batch 2"):
        train_steps(
            batches, lambda b: model(b).sum(), opt, run=run, epoch=3, steps=3, progress=False
        )
    # at most `steps` batches; the mean of the losses seen
    model = nn.Linear(2, 1, bias=False)
    nn.init.ones_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    mean = train_steps(
        [torch.ones(1, 2), 2 * torch.ones(1, 2), torch.full((1, 2), float("nan"))],
        lambda b: model(b).sum(),
        opt,
        run=run,
        epoch=1,
        steps=2,
        progress=False,
    )
    assert mean == pytest.approx(3.0)  # (2 + 4) / 2; the third (NaN) batch is never used


def test_truncate_metrics_keeps_the_epochs_done(tmp_path):
    run = RunDir(tmp_path, main=True)
    for e in (1, 2, 3):
        run.log_metrics(e, {"loss": float(e)})
    run.truncate_metrics(2)
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]


# --------------------------------------------------------------------------- device
def test_resolve_device_auto_cpu_and_errors(monkeypatch):
    from ihmr.errors import ConfigError
    from ihmr.runs import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None).type == "cpu"
    for name in ("cuda", "cuda:1"):
        with pytest.raises(
            ConfigError,
            match=r"torch\.cuda\.is_available\(\) is False; use "
            r"--device cpu",
        ):
            resolve_device(name)
    with pytest.raises(ConfigError, match="'gpu' is not a device name; use auto, cpu, cuda"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda:1")  # this torchrun rank's GPU
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="has 2 GPU"):
        resolve_device("cuda:2")
