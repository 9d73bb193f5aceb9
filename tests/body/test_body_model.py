"""BodyModel's own LBS against smplx's forward, chunking, inputs, joints-only path, genders."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ihmr.body import BodyOutput, forward_gendered, normalise_gender
from ihmr.body.constants import GT_JOINT_NAMES, OPENPOSE_JOINT_NAMES, SPIN_JOINT_NAMES
from ihmr.body.files import to_smplx, validate_body
from ihmr.body.model import BodyModel, KinematicChain, chain_levels
from ihmr.body.testing import mean_params_arrays, random_body_arrays
from ihmr.errors import ShapeError
from ihmr.geometry import axis_angle_to_matrix


def _smplx_forward(data, betas, pose_aa):
    layer = to_smplx(data, dtype=torch.float64)
    rot = axis_angle_to_matrix(pose_aa.reshape(-1, 24, 3))
    return layer(betas=betas, global_orient=rot[:, :1], body_pose=rot[:, 1:])


def test_forward_matches_smplx(body_data, body64, random_inputs):
    betas, pose = random_inputs
    out = body64(betas, pose)
    ref = _smplx_forward(body_data, betas, pose)
    torch.testing.assert_close(out.vertices, ref.vertices, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.joints, ref.joints[:, :24], rtol=0, atol=1e-12)
    # H36M joints: the regressor applied to smplx's posed vertices.
    h36m = torch.einsum(
        "kv,bvc->bkc", torch.from_numpy(body_data["J_regressor_h36m"]), ref.vertices
    )
    torch.testing.assert_close(out.joints_h36m, h36m, rtol=0, atol=1e-12)


def test_forward_float32_matches_smplx(body_data, random_inputs):
    body = BodyModel(body_data, mean_params_arrays())
    betas, pose = (x.float() for x in random_inputs)
    out = body(betas, pose)
    assert out.vertices.dtype == torch.float32
    ref = _smplx_forward(body_data, betas.double(), pose.double())
    torch.testing.assert_close(out.vertices.double(), ref.vertices, rtol=0, atol=1e-5)


def test_spin49_joints_by_name(body_data, body64, random_inputs):
    # Spot checks of SPIN's JOINT_MAP written by name, independent of SPIN_JOINT_MAP's numbers.
    betas, pose = random_inputs
    out = body64(betas, pose)
    ref = _smplx_forward(body_data, betas, pose)
    extra = torch.einsum(
        "kv,bvc->bkc", torch.from_numpy(body_data["J_regressor_extra"]), ref.vertices
    )
    vid = body_data["vertex_joint_ids"]
    expect = {
        "OP MidHip": ref.joints[:, 0],
        "OP RAnkle": ref.joints[:, 8],
        "OP LWrist": ref.joints[:, 20],
        "OP Neck": ref.joints[:, 12],
        "Right Knee": ref.joints[:, 5],
        "Right Hip": extra[:, 0],
        "Left Hip": extra[:, 1],
        "Top of Head (LSP)": extra[:, 3],
        "Head (H36M)": extra[:, 8],
        "OP Nose": ref.vertices[:, vid[0]],
        "Right Eye": ref.vertices[:, vid[1]],
        "OP LHeel": ref.vertices[:, vid[7]],
        "OP RBigToe": ref.vertices[:, vid[8]],
        "Left Ear": ref.vertices[:, vid[4]],
    }
    assert len(SPIN_JOINT_NAMES) == 49 and out.joints49.shape == (9, 49, 3)
    for name, want in expect.items():
        torch.testing.assert_close(
            out.joints49[:, SPIN_JOINT_NAMES.index(name)], want, rtol=0, atol=1e-12, msg=name
        )
    assert SPIN_JOINT_NAMES[:25] == OPENPOSE_JOINT_NAMES and SPIN_JOINT_NAMES[25:] == GT_JOINT_NAMES


def test_rotmats_and_axis_angle_inputs_agree(body64, random_inputs):
    betas, pose = random_inputs
    a = body64(betas, pose)
    b = body64(betas, axis_angle_to_matrix(pose.view(-1, 24, 3)))
    c = body64(betas, pose.view(-1, 24, 3))
    torch.testing.assert_close(a.vertices, b.vertices, rtol=0, atol=1e-14)
    torch.testing.assert_close(a.joints49, c.joints49, rtol=0, atol=1e-14)


def test_chunked_forward_equals_single_pass(body64, random_inputs):
    betas, pose = random_inputs
    whole = body64(betas, pose, chunk_size=100)
    chunked = body64(betas, pose, chunk_size=4)
    torch.testing.assert_close(chunked.vertices, whole.vertices, rtol=0, atol=1e-14)
    empty = body64(betas[:0], pose[:0])
    assert empty.vertices.shape == (0, body64.num_vertices, 3) and empty.joints49.shape == (
        0,
        49,
        3,
    )
    parts = list(body64.chunks(betas, pose, chunk_size=4))
    assert [s.start for s, _ in parts] == [0, 4, 8]
    torch.testing.assert_close(torch.cat([o.joints_h36m for _, o in parts]), whole.joints_h36m)


def test_rest_pose_zero_betas_gives_template(body_data, body64):
    out = body64(torch.zeros(2, 10, dtype=torch.float64), torch.zeros(2, 72, dtype=torch.float64))
    np.testing.assert_allclose(out.vertices[0].numpy(), body_data["v_template"], atol=1e-12)
    np.testing.assert_allclose(
        out.joints[1].numpy(), body_data["J_regressor"] @ body_data["v_template"], atol=1e-12
    )


def test_chain_levels_follow_the_tree():
    parents = random_body_arrays(10)["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    levels = chain_levels(parents)
    seen = {0}
    for lvl in levels:
        assert all(parents[j] in seen for j in lvl)
        seen |= set(lvl)
    assert seen == set(range(24)) and len(levels) == 8


def test_kinematic_chain_against_naive_loop():
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    g = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(torch.randn(3, 24, 3, generator=g, dtype=torch.float64))
    joints = torch.randn(3, 24, 3, generator=g, dtype=torch.float64)
    rg, tg = KinematicChain(parents)(rot, joints)
    for b in range(3):
        glob = [None] * 24
        for j in range(24):  # naive sequential 4x4 products
            local = torch.eye(4, dtype=torch.float64)
            local[:3, :3] = rot[b, j]
            local[:3, 3] = joints[b, j] - (joints[b, parents[j]] if j else 0)
            glob[j] = local if j == 0 else glob[parents[j]] @ local
        ref = torch.stack(glob)
        torch.testing.assert_close(rg[b], ref[:, :3, :3], rtol=0, atol=1e-12)
        torch.testing.assert_close(tg[b], ref[:, :3, 3], rtol=0, atol=1e-12)


def test_inputs_are_not_modified(body64, random_inputs):
    betas, pose = random_inputs
    b0, p0 = betas.clone(), pose.clone()
    body64(betas, pose)
    body64.joints_only(betas, pose)
    assert torch.equal(betas, b0) and torch.equal(pose, p0)


def test_bad_inputs_raise_clear_errors(body64):
    z = torch.zeros(2, 10, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"betas must have shape \(B, 10\), got \(2, 11\)"):
        body64(torch.zeros(2, 11), torch.zeros(2, 72))
    with pytest.raises(ShapeError, match=r"pose must be rotation matrices.*got \(2, 70\)"):
        body64(z, torch.zeros(2, 70))
    with pytest.raises(ShapeError, match="same batch size"):
        body64(z, torch.zeros(3, 72))


def test_joints_only_matches_full_forward(body64, random_inputs):
    betas, pose = random_inputs
    full = body64(betas, pose)
    fast = body64.joints_only(betas, pose)
    assert fast.vertices is None
    for name in ("joints", "joints_h36m", "joints49"):
        torch.testing.assert_close(getattr(fast, name), getattr(full, name), rtol=0, atol=1e-12)


def test_joints_only_without_vertex_ids_and_float32(random_inputs):
    # A body of another topology without vertex ids: surface points fall back to joints.
    data = validate_body(random_body_arrays(150, seed=5), "x")
    body = BodyModel(data, mean_params_arrays())
    assert body.vertex_joints_from == "joints"
    betas, pose = (x.float() for x in random_inputs)
    full, fast = body(betas, pose), body.joints_only(betas, pose)
    torch.testing.assert_close(fast.joints49, full.joints49, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        full.joints49[:, SPIN_JOINT_NAMES.index("OP Nose")], full.joints[:, 15]
    )


def test_joints_only_gradients_match(body64, random_inputs):
    betas, pose = (x.clone().requires_grad_(True) for x in random_inputs)
    w = torch.randn(9, 49, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g_full = torch.autograd.grad((body64(betas, pose).joints49 * w).sum(), (betas, pose))
    g_fast = torch.autograd.grad(
        (body64.joints_only(betas, pose).joints49 * w).sum(), (betas, pose)
    )
    for a, b in zip(g_full, g_fast, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_forward_gendered_picks_body_per_sample(random_inputs):
    bodies = {
        g: BodyModel(
            validate_body(random_body_arrays(120, seed=s), g),
            mean_params_arrays(),
            dtype=torch.float64,
        )
        for s, g in enumerate(("neutral", "male", "female"))
    }
    betas, pose = random_inputs
    genders = ["m", "f", "f", 0, 1, "male", "n", "f", "m"]
    out = forward_gendered(bodies, genders, betas, pose)
    for i, g in enumerate(genders):
        ref = bodies[normalise_gender(g)](betas[i : i + 1], pose[i : i + 1])
        torch.testing.assert_close(out.vertices[i], ref.vertices[0], rtol=0, atol=1e-14)
    fast = forward_gendered(bodies, genders, betas, pose, joints_only=True)
    torch.testing.assert_close(fast.joints_h36m, out.joints_h36m, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="gender"):
        normalise_gender("x")
    with pytest.raises(ShapeError, match="one entry per sample"):
        forward_gendered(bodies, ["m"], betas, pose)


def test_forward_gendered_runs_each_body_once_and_takes_code_tensors(random_inputs):
    neutral, female = (
        BodyModel(
            validate_body(random_body_arrays(120, seed=s), "neutral"),
            mean_params_arrays(),
            dtype=torch.float64,
        )
        for s in (0, 2)
    )
    calls = []

    class Counting:
        def __init__(self, body):
            self.body = body

        def __call__(self, betas, pose):
            calls.append((self.body, betas.shape[0]))
            return self.body(betas, pose)

    shared, fem = Counting(neutral), Counting(female)
    bodies = {"neutral": shared, "male": shared, "female": fem}  # no male body: neutral serves
    betas, pose = random_inputs
    codes = torch.tensor([0, 1, -1, 1, 0, 0, -1, 1, 0], dtype=torch.int8)  # SPIN's 3DPW coding
    out = forward_gendered(bodies, codes, betas, pose)
    assert sorted(n for _, n in calls) == [3, 6]  # one forward per distinct body, not per gender
    for i, c in enumerate(codes.tolist()):
        ref = (female if c == 1 else neutral)(betas[i : i + 1], pose[i : i + 1])
        torch.testing.assert_close(out.vertices[i], ref.vertices[0], rtol=0, atol=1e-14)
    calls.clear()
    same = forward_gendered(
        {"neutral": shared, "male": shared, "female": shared}, codes, betas, pose
    )
    assert [n for _, n in calls] == [9]  # one body for all: the whole batch in input order
    torch.testing.assert_close(same.vertices, neutral(betas, pose).vertices, rtol=0, atol=0)


def test_body_output_indexing(body64, random_inputs):
    out = body64(*random_inputs)
    sub = out[2:4]
    assert isinstance(sub, BodyOutput) and sub.vertices.shape[0] == 2
    assert torch.equal(sub.joints49, out.joints49[2:4])


def test_bundled_open_body_loads_and_joints_only_agrees(monkeypatch):
    from ihmr.body import files, load_body

    if not all(p.is_file() for p in files.open_body_paths()):
        pytest.skip("the bundled open body (assets/open_body/) is not built yet")
    monkeypatch.delenv(files.ENV_VAR, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the once-per-process open-body notice
        body = load_body(dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    betas = torch.randn(3, 10, generator=g, dtype=torch.float64)
    pose = 0.4 * torch.randn(3, 72, generator=g, dtype=torch.float64)
    full, fast = body(betas, pose), body.joints_only(betas, pose)
    assert full.vertices.shape == (3, body.num_vertices, 3) and body.faces.shape[1] == 3
    torch.testing.assert_close(fast.joints49, full.joints49, rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.joints_h36m, full.joints_h36m, rtol=0, atol=1e-10)


def test_dtype_follows_the_inputs(body_data, body64, random_inputs):
    body32 = BodyModel(body_data, mean_params_arrays())  # float32 buffers
    betas, pose = random_inputs  # float64
    out = body32(betas, pose)
    assert out.vertices.dtype == torch.float64 and out.joints49.dtype == torch.float64
    assert body32.joints_only(betas, pose).joints.dtype == torch.float64
    torch.testing.assert_close(out.vertices, body64(betas, pose).vertices, rtol=0, atol=1e-5)


def test_forward_gradcheck_float64():
    body = BodyModel(
        validate_body(random_body_arrays(30, seed=6, vertex_joint_ids=True), "x"),
        mean_params_arrays(),
        dtype=torch.float64,
    )
    g = torch.Generator().manual_seed(4)
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64, requires_grad=True)
    pose = (0.5 * torch.randn(2, 72, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda b, p: body(b, p).vertices, (betas, pose), fast_mode=True)
    assert torch.autograd.gradcheck(
        lambda b, p: body.joints_only(b, p).joints49, (betas, pose), fast_mode=True
    )
