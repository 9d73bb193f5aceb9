"""Joint orders, names and maps of SMPL, H36M, LSP-14, OpenPose-25 and SPIN's 49 joints.

Facts from SMPL, smplx and SPIN (``constants.py``); written out here once so every part of
``ihmr`` uses the same indices.
"""

from __future__ import annotations

# SMPL kinematic tree: parent of each of the 24 joints (-1 for the root).
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

SMPL_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

NUM_BETAS = 10
NUM_JOINTS = 24
NUM_POSE_FEATURES = 23 * 9  # pose blend shapes act on (R_j - I) of the 23 non-root joints

H36M_JOINT_NAMES = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
H36M_PELVIS = 0
# The 14 LSP joints (r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, r_wrist, r_elbow,
# r_shoulder, l_shoulder, l_elbow, l_wrist, neck, head top) taken from the 17 H36M joints.
H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)

# SPIN's J_regressor_extra.npy rows (9 x V), in file order.
EXTRA_JOINT_NAMES = (
    "right_hip_lsp",
    "left_hip_lsp",
    "neck_lsp",
    "head_top_lsp",
    "pelvis_mpii",
    "thorax_mpii",
    "spine_h36m",
    "jaw_h36m",
    "head_h36m",
)

# The 21 surface points smplx appends to SMPL's 24 joints (SMPL/SMPL-H topology vertex ids), in
# smplx's order: 5 face points, 6 foot points, then the 10 finger tips (left hand first).
VERTEX_JOINT_NAMES = (
    "nose",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
    "left_thumb",
    "left_index",
    "left_middle",
    "left_ring",
    "left_pinky",
    "right_thumb",
    "right_index",
    "right_middle",
    "right_ring",
    "right_pinky",
)
SMPL_VERTEX_JOINT_IDS = (
    332,
    6260,
    2800,
    4071,
    583,
    3216,
    3226,
    3387,
    6617,
    6624,
    6787,
    2746,
    2319,
    2445,
    2556,
    2673,
    6191,
    5782,
    5905,
    6016,
    6133,
)
SMPL_NUM_VERTICES = 6890

# For a body whose mesh does not share SMPL's topology and which ships no vertex ids, each
# surface point falls back to the nearest SMPL joint (documented approximation).
VERTEX_JOINT_FALLBACK = (
    15,
    15,
    15,
    15,
    15,
    10,
    10,
    7,
    11,
    11,
    8,
    22,
    22,
    22,
    22,
    22,
    23,
    23,
    23,
    23,
    23,
)

OPENPOSE_JOINT_NAMES = (
    "OP Nose",
    "OP Neck",
    "OP RShoulder",
    "OP RElbow",
    "OP RWrist",
    "OP LShoulder",
    "OP LElbow",
    "OP LWrist",
    "OP MidHip",
    "OP RHip",
    "OP RKnee",
    "OP RAnkle",
    "OP LHip",
    "OP LKnee",
    "OP LAnkle",
    "OP REye",
    "OP LEye",
    "OP REar",
    "OP LEar",
    "OP LBigToe",
    "OP LSmallToe",
    "OP LHeel",
    "OP RBigToe",
    "OP RSmallToe",
    "OP RHeel",
)
GT_JOINT_NAMES = (
    "Right Ankle",
    "Right Knee",
    "Right Hip",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Wrist",
    "Right Elbow",
    "Right Shoulder",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
    "Nose",
    "Left Eye",
    "Right Eye",
    "Left Ear",
    "Right Ear",
)
SPIN_JOINT_NAMES = OPENPOSE_JOINT_NAMES + GT_JOINT_NAMES  # 49 = 25 OpenPose + 24 ground truth

# Index of each of SPIN's 49 joints in the 54 stacked points
# [24 SMPL joints | 21 vertex joints | 9 J_regressor_extra joints].
SPIN_JOINT_MAP = (
    # OpenPose 25
    24,
    12,
    17,
    19,
    21,
    16,
    18,
    20,
    0,
    2,
    5,
    8,
    1,
    4,
    7,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
    # ground truth 24
    8,
    5,
    45,
    46,
    4,
    7,
    21,
    19,
    17,
    16,
    18,
    20,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    24,
    26,
    25,
    28,
    27,
)
NUM_SPIN_JOINTS = 49

GENDERS = ("neutral", "male", "female")
