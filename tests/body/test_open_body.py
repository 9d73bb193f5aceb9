"""The bundled open body: SMPL's file layout, its tree, and that it behaves like a person."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
L_HIP, R_HIP, L_KNEE, L_ANKLE, R_ANKLE, L_SHOULDER, L_ELBOW, R_ELBOW = 1, 2, 4, 7, 8, 16, 18, 19


def _asset(name: str):
    path = importlib.resources.files("ihmr.assets") / "open_body" / name
    with path.open("rb") as f:
        return dict(np.load(f, allow_pickle=False))


@pytest.fixture(scope="module")
def body():
    return _asset("open_body.npz")


def _rodrigues(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.deg2rad(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _lbs(body, rots, betas=None):
    """Plain numpy linear blend skinning, written here independently of ihmr."""
    v = body["v_template"].astype(np.float64)
    if betas is not None:
        v = v + body["shapedirs"] @ np.asarray(betas, float)
    joints = body["J_regressor"] @ v
    parents = body["kintree_table"][0]
    world = [None] * 24
    for j in range(24):
        m = np.eye(4)
        m[:3, :3] = rots[j]
        p = int(parents[j]) if j else -1
        m[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        world[j] = m if p < 0 else world[p] @ m
    out = np.zeros_like(v)
    for j in range(24):
        r, t = world[j][:3, :3], world[j][:3, 3] - world[j][:3, :3] @ joints[j]
        out += body["weights"][:, j : j + 1] * (v @ r.T + t)
    return out, joints


def test_keys_shapes_and_dtypes(body):
    v = body["v_template"].shape[0]
    assert 5000 <= v <= 15000
    expected = {
        "v_template": (v, 3),
        "shapedirs": (v, 3, 10),
        "posedirs": (v, 3, 207),
        "J_regressor": (24, v),
        "weights": (v, 24),
        "kintree_table": (2, 24),
        "J_regressor_h36m": (17, v),
        "J_regressor_extra": (9, v),
    }
    for key, shape in expected.items():
        assert body[key].shape == shape, key
        assert np.isfinite(body[key]).all(), key
    assert body["f"].ndim == 2 and body["f"].shape[1] == 3 and body["f"].dtype == np.int64
    assert body["kintree_table"].dtype == np.int64
    assert body["f"].min() == 0 and body["f"].max() == v - 1  # every vertex used, none out of range
    assert body["v_template"].dtype == np.float32


def test_file_is_small():
    path = importlib.resources.files("ihmr.assets") / "open_body" / "open_body.npz"
    assert path.stat().st_size < 5 * 1024 * 1024
    for name in ("LICENSE", "PROVENANCE.md"):
        assert (importlib.resources.files("ihmr.assets") / "open_body" / name).is_file()


def test_parents_match_smpl(body):
    parents = body["kintree_table"][0].astype(np.int64)
    assert parents[0] in (-1, 4294967295)
    assert parents[1:].tolist() == SMPL_PARENTS[1:]
    assert body["kintree_table"][1].tolist() == list(range(24))


def test_rows_sum_to_one_and_are_nonnegative(body):
    for key in ("weights", "J_regressor", "J_regressor_h36m", "J_regressor_extra"):
        a = body[key].astype(np.float64)
        assert (a >= 0).all(), key
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5, err_msg=key)


def test_faces_point_outwards(body):
    v, f = body["v_template"].astype(np.float64), body["f"]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    signed_volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    assert signed_volume > 0.03  # m^3: a person of about 60 l with outward normals


def test_pelvis_at_origin_y_up_facing_z(body):
    joints = body["J_regressor"] @ body["v_template"].astype(np.float64)
    assert np.linalg.norm(joints[0]) < 0.02
    assert joints[15, 1] > joints[0, 1] > joints[L_ANKLE, 1]  # head above pelvis above ankles
    assert joints[L_HIP, 0] > 0 > joints[R_HIP, 0]  # the subject's left on +x, as SMPL
    v = body["v_template"]
    toes = v[v[:, 1] < v[:, 1].min() + 0.05]
    assert toes[:, 2].max() > joints[L_ANKLE, 2] + 0.08  # the feet point to +z


def test_height_in_human_range(body):
    height = np.ptp(body["v_template"][:, 1])
    assert 1.5 <= height <= 1.9


def test_template_is_left_right_symmetric(body):
    from scipy.spatial import cKDTree

    v = body["v_template"].astype(np.float64)
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    dist, _ = cKDTree(v).query(mirrored)
    assert np.median(dist) < 0.002 and dist.max() < 0.02
    joints = body["J_regressor"] @ v
    left = [1, 4, 7, 10, 13, 16, 18, 20, 22]
    np.testing.assert_allclose(joints[left] * [-1, 1, 1], joints[[j + 1 for j in left]], atol=0.005)


def test_t_pose_arms_horizontal(body):
    joints = body["J_regressor"] @ body["v_template"].astype(np.float64)
    arm = joints[20] - joints[16]  # left shoulder to left wrist
    assert arm[0] > 0.4 and abs(arm[1]) < 0.03 and abs(arm[2]) < 0.03


def test_elbow_rotation_moves_forearm_not_legs(body):
    rots = np.tile(np.eye(3), (24, 1, 1))
    rots[L_ELBOW] = _rodrigues([0, 1, 0], -90.0)  # bend the left elbow by 90 degrees
    posed, joints = _lbs(body, rots)
    rest = body["v_template"].astype(np.float64)
    move = np.linalg.norm(posed - rest, axis=1)
    w = body["weights"]
    forearm = (w[:, L_ELBOW] + w[:, 20] + w[:, 22]) > 0.99
    legs = (w[:, [1, 2, 4, 5, 7, 8, 10, 11]].sum(1)) > 0.99
    assert forearm.sum() > 100 and legs.sum() > 1000
    # the hand end of the forearm swings by about the forearm's length
    assert np.median(move[forearm]) > 0.1
    assert move[legs].max() < 1e-6  # float32 weights sum to 1 within 1e-7
    # the wrist now lies in front of (or behind) the elbow rather than beside it
    wrist = body["J_regressor"][20] @ posed
    assert abs(wrist[2] - joints[L_ELBOW, 2]) > 0.2 and abs(wrist[0] - joints[L_ELBOW, 0]) < 0.05


def test_betas_change_height_and_girth(body):
    rest = body["v_template"].astype(np.float64)

    def height(b):
        return np.ptp((rest + body["shapedirs"] @ b)[:, 1])

    def waist_width(b):
        v = rest + body["shapedirs"] @ b
        band = v[(np.abs(v[:, 1] - 0.1) < 0.02) & (np.abs(v[:, 0]) < 0.3)]
        return np.ptp(band[:, 0])

    e = np.eye(10)
    assert height(2 * e[0]) - height(-2 * e[0]) > 0.2  # beta 0 is stature
    assert 1.4 < height(-2 * e[0]) and height(2 * e[0]) < 2.0
    assert waist_width(2 * e[1]) - waist_width(-2 * e[1]) > 0.03  # beta 1 is weight
    # every direction does something, and they are orthogonal (Gram-Schmidt in the build)
    flat = body["shapedirs"].reshape(-1, 10).astype(np.float64)
    assert (np.linalg.norm(flat, axis=0) > 1e-3).all()
    gram = flat.T @ flat
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-3 * np.diag(gram).max()


def test_regressors_sit_on_the_right_joints(body):
    v = body["v_template"].astype(np.float64)
    j24 = body["J_regressor"] @ v
    h36m = body["J_regressor_h36m"] @ v
    extra = body["J_regressor_extra"] @ v
    # H36M order: pelvis, r_hip, r_knee, r_ankle, l_hip, l_knee, l_ankle, ... l_wrist, r_* arm
    for h, s in [(1, 2), (2, 5), (3, 8), (4, 1), (5, 4), (6, 7), (11, 16), (13, 20), (16, 21)]:
        assert np.linalg.norm(h36m[h] - j24[s]) < 0.03, (h, s)
    assert h36m[10, 1] > h36m[9, 1] > h36m[8, 1] > h36m[7, 1] > h36m[0, 1]  # up the spine
    # SPIN's extra order: r_hip, l_hip, neck, head top, pelvis, thorax, spine, jaw, head
    assert extra[0, 0] < 0 < extra[1, 0]
    assert extra[3, 1] == extra[:, 1].max() and extra[3, 1] > v[:, 1].max() - 0.05


def test_mean_params_layout():
    mean = _asset("mean_params.npz")
    assert mean["pose"].shape == (144,) and mean["shape"].shape == (10,)
    np.testing.assert_allclose(mean["shape"], 0.0)
    np.testing.assert_allclose(mean["cam"], [0.9, 0.0, 0.0])
    # interleaved 6-D: [a1x, a2x, a1y, a2y, a1z, a2z] for the columns a1, a2 of each rotation
    six = mean["pose"].reshape(24, 3, 2).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(six, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.einsum("jk,jk->j", six[:, :, 0], six[:, :, 1]), 0.0, atol=1e-6)
    # global orientation: 180 degrees about x, so a1 = (1, 0, 0) and a2 = (0, -1, 0)
    np.testing.assert_allclose(mean["pose"][:6], [1, 0, 0, -1, 0, 0], atol=1e-6)


def test_surface_point_vertices(body):
    # smplx's 21 surface joints: nose, r/l eye, r/l ear, l big toe, l small toe, l heel,
    # r big toe, r small toe, r heel, l thumb..pinky tips, r thumb..pinky tips
    ids = body["vertex_joint_ids"]
    assert ids.shape == (21,) and ids.dtype == np.int64 and len(set(ids.tolist())) == 21
    v = body["v_template"].astype(np.float64)
    p = v[ids]
    joints = body["J_regressor"] @ v
    head = joints[15]
    assert p[0, 2] == max(p[:5, 2]) and abs(p[0, 0]) < 0.01  # the nose is the frontmost, central
    assert p[1, 0] < 0 < p[2, 0] and p[3, 0] < p[1, 0] and p[4, 0] > p[2, 0]  # eyes inside ears
    assert (np.abs(p[:5, 1] - head[1]) < 0.1).all()
    for big, small, heel, ankle in ((5, 6, 7, L_ANKLE), (8, 9, 10, R_ANKLE)):
        assert p[big, 2] > joints[ankle, 2] + 0.1 and p[small, 2] > joints[ankle, 2] + 0.05
        assert p[heel, 2] < joints[ankle, 2] and abs(p[big, 0]) < abs(p[small, 0])
    assert (p[11:16, 0] > joints[20, 0] + 0.05).all()  # finger tips beyond the wrist
    assert (p[12:16, 0] > joints[22, 0]).all()  # and, but for the thumb, beyond the knuckles
    np.testing.assert_allclose(p[[2, 4]] * [-1, 1, 1], p[[1, 3]], atol=0.005)  # mirror pairs
    np.testing.assert_allclose(
        p[[5, 6, 7] + list(range(11, 16))] * [-1, 1, 1],
        p[[8, 9, 10] + list(range(16, 21))],
        atol=0.005,
    )
