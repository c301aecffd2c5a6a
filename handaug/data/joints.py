"""handaug's 21-joint order (names, skeleton) and one remap table per dataset reader.

handaug's order is :data:`JOINT_NAMES`: the wrist, then the thumb, index, middle, ring and
pinky, each from base to tip (thumb: CMC, MCP, IP, tip; fingers: MCP, PIP, DIP, tip).
:class:`~handaug.data.procedural.ProceduralHands` renders its keypoints in this order, and
every reader returns its keypoints in it. :data:`BONES` are the skeleton's 20 edges.

A remap table is an index array ``table`` of 21 integers such that
``canonical = dataset_array[table]``: row ``i`` of the result is row ``table[i]`` of the
dataset's own array. Where the tables come from:

``synthhands``
    Identity. The SynthHands release's ``*_joint_pos.txt`` lists ``W, T0..T3, I0..I3, M0..M3,
    R0..R3, L0..L3`` (wrist, then thumb, index, middle, ring, little finger, base to tip); two
    independent public loaders (a Chainer hand-pose project's ``synth_dataset.py`` and a
    SynthHands preprocessing script, both with the name list ``W, T0, ..., L3``) read it that way.
``ganerated``
    Identity. GANeratedHands was made by the same group with the same hand model and the same
    ``W, T0..L3`` order; a public GANeratedHands loader converts it to RHD's order with
    ``[0, 4, 3, 2, 1, 8, 7, 6, 5, ...]`` (reversing each finger), which confirms base→tip with
    the thumb first.
``freihand``
    Identity: FreiHAND's ``*_xyz.json`` uses wrist, thumb, index, middle, ring, pinky, base→tip.
``realhands``
    Identity (keypoints are optional for RealHands; files found beside the images are assumed
    to be in handaug's order already — an assumption, stated in the reader).
``rhd``
    The Rendered Hand Pose dataset has 42 joints: the left hand in rows 0-20, the right hand in
    rows 21-41; each hand lists its wrist, then thumb, index, middle, ring and pinky from **tip
    to base**. The table below reorders one hand (21 rows); :func:`remap_joints` first picks
    the hand's 21 rows (offset :data:`RHD_HAND_OFFSET`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BONES", "DATASETS", "JOINT_NAMES", "NUM_JOINTS", "REMAP_TABLES", "RHD_HAND_OFFSET", "remap_joints"]

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip
"""Names of the 21 joints, in the order of ``keypoints_2d`` / ``keypoints_3d`` rows."""

NUM_JOINTS: int = 21

BONES: tuple[tuple[int, int], ...] = tuple(
    pair
    for chain in range(5)
    for pair in ((0, 1 + 4 * chain),) + tuple((1 + 4 * chain + k, 2 + 4 * chain + k) for k in range(3))
)
"""The 20 skeleton edges ``(parent, child)`` as joint indices (for drawing skeletons)."""

_IDENTITY = np.arange(NUM_JOINTS, dtype=np.intp)
# One hand of RHD: wrist, then per finger tip→base (rows 1 + 4f .. 4 + 4f); reverse each finger.
_RHD_ONE_HAND = np.array([0] + [1 + 4 * finger + k for finger in range(5) for k in (3, 2, 1, 0)], dtype=np.intp)

REMAP_TABLES: dict[str, np.ndarray] = {
    "synthhands": _IDENTITY,
    "ganerated": _IDENTITY,
    "freihand": _IDENTITY,
    "realhands": _IDENTITY,
    "rhd": _RHD_ONE_HAND,
}
"""Per dataset: ``canonical = dataset_rows[REMAP_TABLES[name]]`` (21 indices into one hand)."""

for _table in REMAP_TABLES.values():
    _table.setflags(write=False)

DATASETS: tuple[str, ...] = tuple(REMAP_TABLES)

RHD_HAND_OFFSET: dict[str, int] = {"left": 0, "right": NUM_JOINTS}
"""First row of each hand in RHD's 42-row arrays."""


def remap_joints(array: np.ndarray, dataset: str, hand: str | None = None) -> np.ndarray:
    """Reorder a dataset's per-joint rows into handaug's joint order.

    Args:
        array: ``(21, D)`` rows in the dataset's order (any ``D``, any dtype: 2D pixels, 3D
            positions, visibility flags ``(21,)`` work too). For ``"rhd"`` it may also be the
            full ``(42, ...)`` array of both hands, then ``hand`` chooses which.
        dataset: one of :data:`DATASETS`.
        hand: ``"left"`` or ``"right"``; only for RHD's 42-row arrays.

    Returns:
        A new array, ``(21, ...)``, same dtype, rows in :data:`JOINT_NAMES` order.

    Raises:
        ValueError: unknown ``dataset``, a row count that does not fit, or a bad ``hand``.
    """
    if dataset not in REMAP_TABLES:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    rows = np.asarray(array)
    if rows.ndim < 1:
        raise ValueError(f"array must have one row per joint, got a scalar of shape {rows.shape}")
    if dataset == "rhd" and rows.shape[0] == 2 * NUM_JOINTS:
        if hand not in RHD_HAND_OFFSET:
            raise ValueError(f"hand must be 'left' or 'right' for RHD's 42-joint arrays, got {hand!r}")
        offset = RHD_HAND_OFFSET[hand]
        rows = rows[offset : offset + NUM_JOINTS]
    elif hand is not None and dataset != "rhd":
        raise ValueError(f"hand applies to RHD's 42-joint arrays only, got hand={hand!r} for dataset {dataset!r}")
    if rows.shape[0] != NUM_JOINTS:
        expected = "21 or 42" if dataset == "rhd" else "21"
        raise ValueError(f"array must have {expected} rows (joints) for dataset {dataset!r}, got shape {rows.shape}")
    return rows[REMAP_TABLES[dataset]].copy()
