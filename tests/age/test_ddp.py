"""Age stage 2 (RRT on cached features, BMC) under torchrun-style DDP: two CPU processes (gloo).

What is asserted, and why it would fail if DDP were broken:
- both ranks end with bit-identical ``linear`` weights and sigma (no gradient all-reduce, or a
  sigma outside the DDP module, lets the ranks drift apart since they see different samples);
- only rank 0 writes: each rank is given its own ``out`` folder and rank 1's never appears;
- the 2-process run equals the 1-process run (same seed): BMC gathers the global batch's targets
  and each rank's mean is weighed by its share of the global batch before DDP averages the
  gradients, so each step's gradient is the 1-process gradient of the same global batch (up to
  float summation order; the odd last batch checks the weighting). A DDP run that
  trained each rank on the whole data, or compared predictions with local targets only, differs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from ihmr.age.train import load_age_checkpoint, train

from .conftest import tiny_config

WORKER = """
import sys, torch
import ihmr.age.train as T
import ihmr.age.criteria as C
from ihmr.age.config import AgeConfig
from ihmr.config import load_config
torch.set_num_threads(1)
box = {}
def capture(name, module):
    orig = getattr(module, name)
    def wrapped(*a, **k):
        out = orig(*a, **k)
        box[name] = out
        return out
    setattr(module, name, wrapped)
capture("load_age_checkpoint", T)
capture("build_criterion", C)
cfg = load_config(AgeConfig, sys.argv[1])
cfg.out = sys.argv[2]
T.train(cfg, log=lambda m: None)
model = box["load_age_checkpoint"][0]
torch.save({"linear": {k: v.detach().clone() for k, v in model.linear.state_dict().items()},
            "criterion": box["build_criterion"].state_dict()}, sys.argv[3])
"""


def _cfg(tiny_run, out, batch_size):
    return tiny_config(
        tiny_run["tmp"],
        tiny_run["csv"],
        stage="rrt",
        out=str(out),
        rrt={"pretrained": str(tiny_run["vanilla"]), "features": str(tiny_run["features"])},
        loss={"kind": "bmc"},
        optim={"epochs": 3, "batch_size": batch_size, "lr": 1e-2},
    )


def _launch_two_ranks(worker: str, tmp_path) -> None:
    """Run ``worker`` as ranks 0 and 1 of a gloo group on 127.0.0.1 (torchrun's environment);
    argv: the config, the rank's output folder and the rank's state file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
                    worker,
                    str(tmp_path / "cfg.yaml"),
                    str(tmp_path / f"out{rank}"),
                    str(tmp_path / f"state{rank}.pt"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    logs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), logs


def test_rrt_two_gloo_processes_match_one_process(tiny_run, tmp_path):
    from ihmr.age.features import load_features
    from ihmr.config import save_config

    n = len(load_features(tiny_run["features"], splits=("train",))["train"]["y"])
    batch_size = 32
    assert (
        n % batch_size % 2 == 1
    )  # an odd last batch: the ranks' shares differ (weighted by train)
    cfg = _cfg(tiny_run, tmp_path / "unused", batch_size)
    save_config(cfg, tmp_path / "cfg.yaml")
    _launch_two_ranks(WORKER, tmp_path)

    s0, s1 = (torch.load(tmp_path / f"state{r}.pt", weights_only=True) for r in range(2))
    for part in ("linear", "criterion"):
        for k in s0[part]:
            assert torch.equal(s0[part][k], s1[part][k]), (part, k)  # ranks in sync
    sigma = float(s0["criterion"]["inner.noise_sigma"])
    assert sigma != pytest.approx(10.0, abs=1e-4)  # learned from its init

    # only rank 0 writes; its run is complete and best.pt loads
    assert not (tmp_path / "out1").exists()
    out0 = tmp_path / "out0"
    assert len((out0 / "metrics.jsonl").read_text().splitlines()) == 3
    assert (out0 / "last.pt").is_file()
    _, payload = load_age_checkpoint(out0 / "best.pt")
    assert payload["stage"] == "rrt"

    # the same run in one process: same final linear and sigma (last.pt holds the last epoch)
    one = train(_cfg(tiny_run, tmp_path / "single", batch_size), log=lambda m: None)
    last = torch.load(one.run_dir / "last.pt", weights_only=True)
    for k, v in s0["linear"].items():
        torch.testing.assert_close(last["state"]["linear"][k], v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        last["state"]["criterion"]["inner.noise_sigma"],
        s0["criterion"]["inner.noise_sigma"],
        rtol=1e-4,
        atol=1e-5,
    )


VANILLA_WORKER = """
import sys, torch
import ihmr.age.train as T
from ihmr.age.config import AgeConfig
from ihmr.config import load_config
torch.set_num_threads(1)
box = {}
orig = torch.optim.Adam
class Capture(orig):
    def __init__(self, params, *a, **k):
        params = list(params)
        box["params"], box["init"] = params, [q.detach().clone() for q in params]
        super().__init__(params, *a, **k)
T.torch.optim.Adam = Capture
cfg = load_config(AgeConfig, sys.argv[1])
cfg.out = sys.argv[2]
T.train(cfg, log=lambda m: None)
trained = [p.detach().clone() for p in box["params"]]
torch.save({"params": trained, "init": box["init"]}, sys.argv[3])
"""


def test_vanilla_two_gloo_processes_stay_in_sync(tiny_run, tmp_path):
    """Stage 1 (DistributedSampler + DDP over the whole network): the ranks see different images
    yet end with identical weights, and only rank 0 writes the run folder."""
    from ihmr.config import save_config

    cfg = tiny_config(tmp_path, tiny_run["csv"], optim={"epochs": 1})
    save_config(cfg, tmp_path / "cfg.yaml")
    _launch_two_ranks(VANILLA_WORKER, tmp_path)
    s0, s1 = (torch.load(tmp_path / f"state{r}.pt", weights_only=True) for r in range(2))
    p0, p1 = s0["params"], s1["params"]
    assert len(p0) == len(p1) > 0
    assert all(
        torch.equal(a, b) for a, b in zip(p0, p1, strict=True)
    )  # gradients all-reduced every step
    assert any(not torch.equal(a, b) for a, b in zip(p0, s0["init"], strict=True))  # and it trained
    assert not (tmp_path / "out1").exists()
    _, payload = load_age_checkpoint(tmp_path / "out0" / "best.pt")
    assert payload["stage"] == "vanilla" and payload["epoch"] == 1
