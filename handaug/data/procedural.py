"""Procedurally rendered hands in two appearance styles: an embedded, download-free dataset.

:class:`ProceduralHands` renders an articulated 3D hand seen by a random pinhole camera, in
one of two looks that differ the way SynthHands (computer graphics) and RealHands (webcam
recordings) differ:

* ``"synthetic"``: one uniform saturated skin colour, a hard directional light with visibly
  quantised Lambertian shading, aliased edges, no texture and no noise.
* ``"real"``: skin tones from light to dark brown, soft wrapped light with a warm or cool
  cast and a mild specular, skin texture (blotches, pores, darker joint creases, nails),
  antialiased edges, blur, sensor noise, white-balance jitter and JPEG compression.

Each sample is a ``dict``:

``image``
    ``(H, W, 3)`` ``uint8`` RGB, ``H == W == image_size``.
``mask``
    ``(H, W)`` ``uint8`` hand silhouette: exactly ``255`` on the hand (palm, fingers and a
    short stub of forearm) and ``0`` elsewhere. It is the hard silhouette sampled at the pixel
    centres, for both styles (never blurred or noisy).
``keypoints_2d``
    ``(21, 2)`` ``float32`` pixel coordinates ``(x, y)``. Convention (OpenCV/albumentations):
    the centre of pixel ``(row i, column j)`` is at ``x = j, y = i``; the image spans
    ``[-0.5, W - 0.5]`` horizontally. They are the exact projection of ``keypoints_3d``:
    ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy`` with the principal point at the image
    centre ``cx = cy = (image_size - 1) / 2``, i.e. ``(K @ P.T).T[:, :2] / Z``. Keypoints are
    returned even where they fall outside the image (a fingertip may leave the frame).
``keypoints_3d``
    ``(21, 3)`` ``float32`` joint positions in the camera frame, in metres: ``X`` right,
    ``Y`` down, ``Z`` forward (``Z > 0`` for every joint: the hand is in front of the camera).
``K``
    ``(3, 3)`` ``float32`` intrinsics ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]`` with a horizontal
    field of view between 50 and 70 degrees.
``style``
    the style string; ``index``: the (non-negative) ``int`` index of the sample.

The joint order is :data:`handaug.data.joints.JOINT_NAMES`: the wrist, then thumb, index,
middle, ring and pinky, each from base to tip (thumb: CMC, MCP, IP, tip; fingers: MCP, PIP,
DIP, tip).

Geometry (pose, hand shape, handedness, camera, hence keypoints, ``K`` and ``mask``) is drawn
from ``numpy.random.default_rng([seed, index])`` and does not depend on the style, so
``ProceduralHands("synthetic", seed=s)[i]`` and ``ProceduralHands("real", seed=s)[i]`` show
the same hand in the same place: handy for paired evaluation. Unpaired training should use
*different* seeds for its two domains. The 3D geometry does not depend on ``image_size``
either (only ``K``, the 2D keypoints and the raster do). Appearance is drawn from
``default_rng([seed, index, style_code])``. Output is a pure function of
``(style, seed, index, image_size, background, hand_scale)``: bit-identical in every process.

The renderer is vectorised numpy (no per-pixel Python loops). The hand is a union of
primitives: each bone a "round cone" (the convex hull of two spheres: a capsule with tapered
radius), the palm's metacarpals, knuckles, thenar eminence and thumb web round cones too, the
body of the palm and a forearm stub flat ellipsoids. A ray through every pixel centre is
intersected analytically with each primitive whose projection may contain that pixel; a depth
test keeps the nearest hit and its surface normal for shading. The ``"real"`` style softens
the silhouette by filtering (coverage is the mask seen through a 0.7 px Gaussian footprint).
Only numpy, OpenCV and the standard library are used.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from handaug.arguments import check_int
from handaug.data.background import GREEN_SCREEN_RGB, RENDERED_BACKGROUNDS
from handaug.data.joints import NUM_JOINTS

__all__ = ["STYLES", "ProceduralHands"]

STYLES: tuple[str, ...] = ("synthetic", "real")

_STYLE_CODES = {"synthetic": 0, "real": 1}
_MIN_IMAGE_SIZE = 16
_MAX_HAND_SCALE = 1.5

# ---------------------------------------------------------------------------------------------
# Hand anatomy (hand frame, metres, right hand, before the per-sample scale).
# Hand frame: origin at the wrist, +y from the wrist towards the middle finger, +x towards the
# thumb, +z out of the palm (the side the fingers flex to). Chains: thumb, index, middle,
# ring, pinky; each has a base joint (CMC or MCP) and three bones.
# ---------------------------------------------------------------------------------------------
_CHAIN_JOINTS = np.arange(1, 21).reshape(5, 4)  # joint indices of each chain, base to tip

_BASE_POSITION = np.array(
    [
        [0.021, 0.024, 0.010],  # thumb CMC
        [0.025, 0.087, 0.000],  # index MCP
        [0.004, 0.091, 0.000],  # middle MCP
        [-0.015, 0.086, 0.002],  # ring MCP
        [-0.032, 0.076, 0.005],  # pinky MCP
    ]
)
_BONE_LENGTH = np.array(
    [
        [0.045, 0.032, 0.028],  # thumb: metacarpal, proximal, distal phalanx (to the tip)
        [0.040, 0.024, 0.022],  # index: proximal, middle, distal phalanx (to the tip)
        [0.045, 0.028, 0.023],  # middle
        [0.042, 0.027, 0.023],  # ring
        [0.033, 0.020, 0.021],  # pinky
    ]
)
_JOINT_RADIUS = np.array(
    [
        [0.0150, 0.0115, 0.0102, 0.0088],  # thumb at CMC (thenar), MCP, IP, tip
        [0.0100, 0.0090, 0.0079, 0.0070],  # fingers at MCP, PIP, DIP, tip
        [0.0104, 0.0093, 0.0081, 0.0071],
        [0.0097, 0.0087, 0.0077, 0.0068],
        [0.0088, 0.0079, 0.0070, 0.0063],
    ]
)
_PALMAR = np.tile([0.0, 0.0, 1.0], (4, 1))  # the fingers flex towards +z
_REST_SPLAY_DEG = np.array([4.0, 0.0, -4.0, -9.0])  # fingers' neutral direction, towards +x
_SPREAD_DEG = np.array([8.0, 1.0, -5.0, -10.0])  # abduction of a fully spread, open hand

# Fixed parts (metres before scaling): the end of the thenar eminence, and the forearm stub, an
# ellipsoid reaching from inside the palm to 9.5 cm behind the wrist (wrist about 45 x 30 mm).
_THENAR_END = np.array([0.004, 0.050, 0.004])
_FOREARM_CENTRE = np.array([0.0, -0.035, 0.0])
_FOREARM_AXES = np.diag([0.029, 0.06, 0.019])
# Per primitive of the surface (15 digit bones, 7 palm cones, the palm and forearm ellipsoids):
# the part (0 palm or forearm, 1-3 proximal to distal bone), and the palm's back-of-hand direction.
_PARTS = np.concatenate([np.tile([1, 2, 3], 5), np.zeros(9, dtype=np.int64)])
_PALM_DORSAL = np.tile([0.0, 0.0, -1.0], (9, 1))

# Joint limits, degrees. Finger MCP flexion/abduction, PIP and DIP flexion.
_FINGER_MCP_RANGE = (-10.0, 90.0)
_FINGER_ABDUCTION_RANGE = (-15.0, 15.0)
_FINGER_PIP_RANGE = (0.0, 110.0)
_FINGER_DIP_RANGE = (0.0, 80.0)
# Thumb: metacarpal direction (azimuth from +y towards +x in the palm plane, elevation towards
# +z out of it), MCP and IP flexion.
_THUMB_LIMITS = np.array([[0.0, 70.0], [-5.0, 75.0], [-10.0, 60.0], [-15.0, 85.0]])

# Pose prototypes and their probabilities. A finger's "curl" runs from 0 (straight) to 1 (fist).
_PROTOTYPES = ("open", "relaxed", "fist", "point", "peace", "pinch", "grasp", "thumbs_up", "random")
_PROTOTYPE_CDF = np.cumsum([0.18, 0.17, 0.12, 0.10, 0.08, 0.12, 0.10, 0.05, 0.08])
# Thumb modes: ranges (degrees) of azimuth, elevation, MCP flexion and IP flexion.
_THUMB_MODES: dict[str, np.ndarray] = {
    "abducted": np.array([[45, 65], [0, 20], [-5, 15], [-10, 15]], dtype=float),
    "relaxed": np.array([[30, 50], [20, 40], [10, 30], [10, 30]], dtype=float),
    "over_fist": np.array([[5, 20], [30, 48], [30, 55], [20, 45]], dtype=float),
    "oppose": np.array([[15, 35], [45, 65], [10, 30], [10, 40]], dtype=float),
    "pinch": np.array([[15, 35], [45, 65], [-5, 35], [0, 45]], dtype=float),
    "extended": np.array([[10, 30], [30, 50], [-5, 10], [-10, 5]], dtype=float),
}
_PINCH_CANDIDATES = 48


@dataclass(frozen=True)
class _Surface:
    """The hand's surface as primitives (metres; hand or camera frame).

    Round cones (capsules with tapered radius, the convex hull of two spheres): centres
    ``a``/``b`` ``(P, 3)`` and radii ``ra``/``rb`` ``(P,)``. Ellipsoids: ``centre`` ``(E, 3)``
    and ``axes`` ``(E, 3, 3)`` whose columns are the semi-axis vectors. Per primitive, cones
    first then ellipsoids: ``part`` ``(P + E,)`` (0 palm or forearm; 1, 2, 3 the proximal,
    middle, distal bone of a digit) and ``dorsal`` ``(P + E, 3)``, the unit direction of the
    back of the hand there.
    """

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    centre: np.ndarray
    axes: np.ndarray
    part: np.ndarray
    dorsal: np.ndarray

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> _Surface:
        """The surface moved by ``x -> rotation @ x + translation`` (``rotation`` orthogonal)."""
        return _Surface(
            a=self.a @ rotation.T + translation,
            b=self.b @ rotation.T + translation,
            ra=self.ra,
            rb=self.rb,
            centre=self.centre @ rotation.T + translation,
            axes=rotation @ self.axes,
            part=self.part,
            dorsal=self.dorsal @ rotation.T,
        )


@dataclass(frozen=True)
class _Geometry:
    """Everything drawn from ``(seed, index)``; camera frame, metres."""

    keypoints_3d: np.ndarray  # (21, 3) float32
    keypoints_2d: np.ndarray  # (21, 2) float32, pixels
    K: np.ndarray  # (3, 3) float32
    scene: _Scene  # the hand's surface, ready for ray casting
    rotation: np.ndarray  # (3, 3): hand frame -> camera frame is x -> rotation @ x + translation
    translation: np.ndarray  # (3,)


@dataclass(frozen=True)
class _Hits:
    """The nearest surface point seen through each covered pixel.

    ``sample`` ``(N,)`` is the flat pixel index ``row * size + column``; ``primitive`` ``(N,)``
    indexes the cones then the ellipsoids of the surface; ``point`` and
    ``normal`` ``(N, 3)`` are in the camera frame (the normal unit and outward); ``along``
    ``(N,)`` is the position along a cone's axis (0 at ``a``, 1 at ``b``; 0 on ellipsoids).
    """

    sample: np.ndarray
    primitive: np.ndarray
    point: np.ndarray
    normal: np.ndarray
    along: np.ndarray


# ---------------------------------------------------------------------------------------------
# Kinematics
# ---------------------------------------------------------------------------------------------
def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (faster than ``np.cross`` for small arrays)."""
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx], axis=-1)


def _normalized(v: np.ndarray) -> np.ndarray:
    return v / np.sqrt(np.sum(v * v, axis=-1, keepdims=True))


def _rotation_x(angle: np.ndarray) -> np.ndarray:
    """Rotations about +x turning +y towards +z for positive angles, ``angle.shape + (3, 3)``."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(np.shape(angle) + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1] = out[..., 2, 2] = c
    out[..., 1, 2] = -s
    out[..., 2, 1] = s
    return out


def _bone_frame(direction: np.ndarray, bend: np.ndarray) -> np.ndarray:
    """Right-handed frames ``(..., 3, 3)`` with columns (flexion axis, bone direction, bend side).

    :func:`_rotation_x` applied in such a frame flexes the bone towards ``bend``.
    """
    y = _normalized(direction)
    z = _normalized(bend - np.sum(bend * y, axis=-1, keepdims=True) * y)
    return np.stack([_cross(y, z), y, z], axis=-1)


def _chain_forward(
    base: np.ndarray, frame: np.ndarray, lengths: np.ndarray, flexion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of batched 3-bone chains.

    Args: ``base`` ``(n, 3)`` base joints, ``frame`` ``(n, 3, 3)`` base frames (see
    :func:`_bone_frame`), ``lengths`` ``(n, 3)`` bone lengths in metres, ``flexion`` ``(n, 3)``
    flexion of each joint in radians, the base joint first.

    Returns: joints ``(n, 4, 3)`` from base to tip and the frame of each bone ``(n, 3, 3, 3)``.
    """
    flex = _rotation_x(flexion)
    joints = np.empty((len(base), 4, 3))
    frames = np.empty((len(base), 3, 3, 3))
    joints[:, 0] = base
    rotation = frame
    for k in range(3):
        rotation = frames[:, k] = rotation @ flex[:, k]
        joints[:, k + 1] = joints[:, k] + lengths[:, k, None] * rotation[:, :, 1]
    return joints, frames


def _thumb_axes(azimuth: np.ndarray, elevation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directions of thumb metacarpals and the sides they flex towards, both ``(n, 3)``: the
    thumb pronates (turns its pad towards the fingers) as it rises out of the palm plane."""
    direction = np.stack(
        [np.sin(azimuth) * np.cos(elevation), np.cos(azimuth) * np.cos(elevation), np.sin(elevation)], axis=-1
    )
    pronation = np.radians(20.0) + 0.7 * elevation
    bend = np.stack([-np.cos(pronation), np.zeros_like(pronation), np.sin(pronation)], axis=-1)
    return direction, bend


def _prototype(rng: np.random.Generator) -> tuple[np.ndarray, str, float]:
    """Draw a pose prototype: per-finger curls ``(4,)``, a thumb mode and a spread factor."""
    name = _PROTOTYPES[int(np.searchsorted(_PROTOTYPE_CDF, rng.uniform(0.0, _PROTOTYPE_CDF[-1]), side="right"))]
    u = rng.uniform
    if name == "open":
        return u(0.0, 0.12, 4), "abducted", u(0.4, 1.0)
    if name == "relaxed":
        return u(0.12, 0.4, 4) + np.arange(4) * 0.05, "relaxed", u(0.0, 0.5)
    if name == "fist":
        return u(0.85, 1.0, 4), "over_fist", 0.0
    if name == "point":
        return np.concatenate([u(0.0, 0.1, 1), u(0.85, 1.0, 3)]), "over_fist", u(0.0, 0.5)
    if name == "peace":
        return np.concatenate([u(0.0, 0.1, 2), u(0.85, 1.0, 2)]), "over_fist", u(0.8, 1.6)
    if name == "pinch":  # thumb to index; the other fingers straight ("OK" sign) or relaxed
        others = u(0.0, 0.15, 3) if u() < 0.5 else u(0.2, 0.5, 3)
        return np.concatenate([u(0.35, 0.55, 1), others]), "pinch", u(0.0, 0.8)
    if name == "grasp":
        return u(0.35, 0.7, 4), "oppose", u(0.0, 0.4)
    if name == "thumbs_up":
        return u(0.85, 1.0, 4), "extended", 0.0
    modes = ("abducted", "relaxed", "over_fist", "oppose", "extended")
    return u(0.0, 1.0, 4), modes[int(rng.integers(len(modes)))], u(0.0, 1.0)


def _finger_angles(rng: np.random.Generator, curl: np.ndarray, spread: float) -> np.ndarray:
    """Finger joint angles in degrees, ``(4, 4)``: MCP flexion, PIP, DIP, abduction.

    Flexion grows with the curl; the DIP follows the PIP (about two thirds of it) as in real
    hands; curled fingers close together, straight ones fan out by ``spread``.
    """
    noise = rng.normal(0.0, 1.0, (4, 4)) * [6.0, 8.0, 5.0, 2.5]
    mcp = np.clip(86.0 * curl - 3.0 + noise[:, 0], *_FINGER_MCP_RANGE)
    pip = np.clip(104.0 * curl + noise[:, 1], *_FINGER_PIP_RANGE)
    dip = np.clip(0.62 * pip + noise[:, 2], *_FINGER_DIP_RANGE)
    abduction = np.clip(spread * _SPREAD_DEG * (1.0 - curl) + noise[:, 3], *_FINGER_ABDUCTION_RANGE)
    return np.stack([mcp, pip, dip, abduction], axis=-1)


def _articulate(rng: np.random.Generator, base: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample a plausible pose and pose the five chains (thumb first).

    Returns joints ``(5, 4, 3)`` and bone frames ``(5, 3, 3, 3)`` in the hand frame.
    """
    curl, thumb_mode, spread = _prototype(rng)
    angles = np.radians(_finger_angles(rng, np.clip(curl, 0.0, 1.0), spread))
    splay = np.radians(_REST_SPLAY_DEG) + angles[:, 3]
    finger_direction = np.stack([np.sin(splay), np.cos(splay), np.zeros(4)], axis=-1)

    # The thumb: a pinch keeps, among random opposed thumbs, the one whose tip lands nearest
    # the pad of the index fingertip; other modes draw a single thumb from their ranges.
    count = _PINCH_CANDIDATES if thumb_mode == "pinch" else 1
    ranges = _THUMB_MODES[thumb_mode]
    thumb = rng.uniform(ranges[:, 0], ranges[:, 1], (count, 4)) + rng.normal(0.0, 3.0, (count, 4))
    thumb = np.radians(np.clip(thumb, _THUMB_LIMITS[:, 0], _THUMB_LIMITS[:, 1]))
    thumb_direction, thumb_bend = _thumb_axes(thumb[:, 0], thumb[:, 1])

    # all chains at once: the four fingers, then the thumb candidates
    frame = _bone_frame(
        np.concatenate([finger_direction, thumb_direction]),
        np.concatenate([_PALMAR, thumb_bend]),
    )
    flexion = np.concatenate([angles[:, :3], np.stack([np.zeros(count), thumb[:, 2], thumb[:, 3]], axis=-1)])
    chains = np.concatenate([np.arange(1, 5), np.zeros(count, dtype=np.int64)])
    joints, frames = _chain_forward(base[chains], frame, lengths[chains], flexion)
    best = 4
    if thumb_mode == "pinch":
        pad = joints[0, 3] + 0.008 * frames[0, 2, :, 2]
        best += int(np.argmin(np.sum((joints[4:, 3] - pad) ** 2, axis=-1)))
    order = [best, 0, 1, 2, 3]
    return joints[order], frames[order]


def _hand_surface(chain_joints: np.ndarray, frames: np.ndarray, radii: np.ndarray, scale: float) -> _Surface:
    """The surface of a posed hand (hand frame, metres).

    Round cones for the 15 digit bones, the four metacarpals, the knuckles, the thenar
    eminence and the thumb web; flat ellipsoids for the body of the palm and a forearm stub.
    """
    starts = chain_joints[:, :3]
    ends = chain_joints[:, 1:].copy()
    # the last bone stops short by most of the tip radius: the tip keypoint is on the surface
    ends[:, 2] -= 0.9 * radii[:, 3, None] * frames[:, 2, :, 1]

    s = scale
    mcp = chain_joints[1:, 0]
    cmc, thumb_mcp = chain_joints[0, 0], chain_joints[0, 1]
    metacarpal_base = np.stack([mcp[:, 0] * 0.55, np.full(4, 0.012 * s), mcp[:, 2] * 0.5], axis=-1)
    web_end = 0.65 * mcp[0] + 0.35 * metacarpal_base[0]
    palm_a = np.concatenate([metacarpal_base, [mcp[0], cmc, thumb_mcp]])
    palm_b = np.concatenate([mcp, [mcp[3], _THENAR_END * s, web_end]])
    palm_ra = np.concatenate([np.full(4, 0.0105 * s), [0.0102 * s, 0.0145 * s, 0.0068 * s]])
    palm_rb = np.concatenate([radii[1:, 0] * 1.1, [0.0092 * s, 0.0110 * s, 0.0078 * s]])

    # palm body: from the wrist to the knuckles, as wide as the knuckles, about 27 mm thick
    across = _normalized(mcp[0] - mcp[3])
    along = _normalized(np.array([0.0, 1.0, 0.0]) - across[1] * across)
    knuckles = mcp.mean(axis=0)
    centre = np.array([0.5 * (mcp[0, 0] + mcp[3, 0]), 0.5 * knuckles[1], 0.5 * knuckles[2] + 0.001 * s])
    half_width = 0.5 * float(np.linalg.norm(mcp[0] - mcp[3])) + 0.012 * s
    half_length = 0.5 * knuckles[1] + 0.006 * s
    axes = np.stack([half_width * across, half_length * along, 0.0135 * s * _cross(across, along)], axis=-1)

    return _Surface(
        a=np.concatenate([starts.reshape(15, 3), palm_a]),
        b=np.concatenate([ends.reshape(15, 3), palm_b]),
        ra=np.concatenate([radii[:, :3].ravel(), palm_ra]),
        rb=np.concatenate([radii[:, 1:].ravel(), palm_rb]),
        centre=np.stack([centre, _FOREARM_CENTRE * s]),
        axes=np.stack([axes, _FOREARM_AXES * s]),
        part=_PARTS,
        dorsal=np.concatenate([-frames[..., 2].reshape(15, 3), _PALM_DORSAL]),
    )


def _hand_model(rng: np.random.Generator) -> tuple[np.ndarray, _Surface, float]:
    """Sample a hand: size (+-10 %), proportions (+-5 % per bone), pose and handedness.

    Returns the joints ``(21, 3)`` and the surface, in the hand frame (metres), and the scale.
    """
    scale = rng.uniform(0.9, 1.1)
    lengths = _BONE_LENGTH * scale * rng.uniform(0.95, 1.05, _BONE_LENGTH.shape)
    base = _BASE_POSITION * scale * rng.uniform(0.96, 1.04, _BASE_POSITION.shape)
    radii = _JOINT_RADIUS * (scale * rng.uniform(0.93, 1.07))
    chain_joints, frames = _articulate(rng, base, lengths)
    joints = np.zeros((NUM_JOINTS, 3))
    joints[_CHAIN_JOINTS] = chain_joints
    surface = _hand_surface(chain_joints, frames, radii, scale)
    if rng.uniform() < 0.5:  # a left hand: the mirror image of a right one
        mirror = np.diag([-1.0, 1.0, 1.0])
        joints, surface = joints @ mirror, surface.transformed(mirror, np.zeros(3))
    return joints, surface, scale


# ---------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------
def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Hand-to-camera rotation: any turn about the finger axis (palm, back or side towards the
    camera), fingers tilted up to 60 degrees towards the camera or 35 away from it (further,
    and the forearm would come at the camera and hide the hand), any roll."""
    yaw, pitch, roll = rng.uniform(-np.pi, np.pi), np.radians(rng.uniform(-60.0, 35.0)), rng.uniform(0.0, 2 * np.pi)
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    about_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    about_z = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return about_z @ about_x @ about_y


def _place_camera(
    rng: np.random.Generator,
    joints: np.ndarray,
    margin: float,
    hand_scale: tuple[float, float],
    surface: _Surface,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random view of the hand, independent of the image size.

    The hand's projected extent (the longer side of the keypoints' bounding box, widened by
    ``margin`` metres on each side for the flesh) is a random fraction in ``hand_scale`` of
    the image side; its centre lies off the image centre by at most the room that is left
    (slightly more, so fingertips sometimes leave the frame). All of ``surface`` (hand frame)
    stays at least 3 cm in front of the camera.

    Returns the rotation and translation (hand frame -> camera frame) and the focal length as a
    fraction of the image side (``K = [[f*size, 0, c], [0, f*size, c], [0, 0, 1]]``).
    """
    fov = np.radians(rng.uniform(50.0, 70.0))
    focal = 0.5 / math.tan(fov / 2)
    rotation = _random_rotation(rng)
    fraction = rng.uniform(*hand_scale)
    shift = rng.uniform(-1.0, 1.0, 2) * 0.55 * max(1.0 - fraction, 0.0)  # of the image side

    middle = joints.mean(axis=0)
    centred = (joints - middle) @ rotation.T
    low, high = centred[:, :2].min(axis=0), centred[:, :2].max(axis=0)
    box_centre = 0.5 * (low + high)
    forward = rotation[2]  # the camera's viewing direction in the hand frame
    ends, radii = np.concatenate([surface.a, surface.b]), np.concatenate([surface.ra, surface.rb])
    nearest = 0.03 + max(
        float(np.max(radii - (ends - middle) @ forward)),
        float(np.max(np.linalg.norm(forward @ surface.axes, axis=-1) - (surface.centre - middle) @ forward)),
    )
    # The projected extent shrinks with the distance: try 32 distances around the orthographic
    # guess, take the nearest whose extent fits and interpolate between it and the one before.
    # (A hand spanning a wide range of depths, or a forearm pointing at the camera, may keep the
    # hand from reaching the size asked for: it is never closer than ``nearest``.)
    guess = focal * (float(np.max(high - low)) + 2 * margin) / fraction
    depths = np.maximum(np.geomspace(0.4 * guess, 2.5 * guess, 32), nearest)
    offset = depths[:, None, None] * shift / focal - box_centre  # where the translation puts the box
    xy = (centred[None, :, :2] + offset) / (depths[:, None, None] + centred[None, :, 2:])
    extents = focal * (np.max(np.max(xy, axis=1) - np.min(xy, axis=1), axis=1) + 2 * margin / depths)
    fits = int(np.argmax(extents <= fraction)) if extents[-1] <= fraction else len(depths) - 1
    depth = float(depths[fits])
    if fits > 0 and extents[fits - 1] > extents[fits]:
        share = (extents[fits - 1] - fraction) / (extents[fits - 1] - extents[fits])
        depth = float(depths[fits - 1] + min(max(share, 0.0), 1.0) * (depths[fits] - depths[fits - 1]))
    translation = np.concatenate([depth * shift / focal - box_centre, [depth]]) - rotation @ middle
    return rotation, translation, focal


def _intrinsics(focal_fraction: float, image_size: int) -> np.ndarray:
    """Pinhole intrinsics, square pixels, principal point at the image centre ``(size - 1) / 2``."""
    f, c = focal_fraction * image_size, (image_size - 1) / 2.0
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]], dtype=np.float32)


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection ``(K @ P.T).T[:, :2] / Z`` of ``(N, 3)`` points, computed in float64."""
    homogeneous = points.astype(np.float64) @ K.astype(np.float64).T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def _sample_geometry(seed: int, index: int, image_size: int, hand_scale: tuple[float, float]) -> _Geometry:
    """Hand, pose and camera of sample ``index``: a function of ``(seed, index)`` only (and of
    ``image_size`` through ``K`` and the 2D keypoints)."""
    rng = np.random.default_rng([seed, index])
    joints, surface, scale = _hand_model(rng)
    rotation, translation, focal = _place_camera(rng, joints, 0.011 * scale, hand_scale, surface)
    K = _intrinsics(focal, image_size)
    keypoints_3d = (joints @ rotation.T + translation).astype(np.float32)
    return _Geometry(
        keypoints_3d=keypoints_3d,
        keypoints_2d=_project(keypoints_3d, K).astype(np.float32),
        K=K,
        scene=_Scene.prepare(surface.transformed(rotation, translation)),
        rotation=rotation,
        translation=translation,
    )


# ---------------------------------------------------------------------------------------------
# Rasterisation: one ray per pixel, analytic ray-primitive intersection, nearest hit wins
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scene:
    """A camera-frame surface with the per-primitive constants of the ray caster.

    Round cone ``p``: unit axis ``e[p]``, ``length[p]``, ``sin_a[p]`` and ``cos2[p]`` of the
    half-angle ``alpha`` of the cone tangent to both end spheres (``sin(alpha) = (ra - rb) / L``)
    and ``table[:, p]``, the constants :func:`_intersect_cones` needs. Ellipsoid ``k``:
    ``inverse[k]`` maps it onto the unit sphere, where the camera centre is ``origin[k]``.
    ``bound_centres``/``bound_shapes`` ``(2P + E, ...)``: ellipsoids (``centre``, ``A @ A.T``)
    bounding each primitive (both end spheres of every cone, then every ellipsoid).
    """

    surface: _Surface
    e: np.ndarray
    length: np.ndarray
    sin_a: np.ndarray
    cos2: np.ndarray
    table: np.ndarray
    inverse: np.ndarray
    origin: np.ndarray
    bound_centres: np.ndarray
    bound_shapes: np.ndarray

    @classmethod
    def prepare(cls, surface: _Surface) -> _Scene:
        a, b, ra, rb = surface.a, surface.b, surface.ra, surface.rb
        axis = b - a
        length = np.sqrt(np.sum(axis * axis, axis=1))
        e = axis / length[:, None]
        sin_a = (ra - rb) / length
        cos2 = 1.0 - sin_a * sin_a
        y0 = -np.sum(a * e, axis=1)  # axial coordinate of the camera centre
        a2, b2 = np.sum(a * a, axis=1), np.sum(b * b, axis=1)
        y_low = ra * sin_a
        k0 = a2 * cos2 - y0 * y0 + 2.0 * y_low * y0 - ra * ra
        table = np.stack([*e.T, *a.T, length, ra, rb, y_low, y_low + length * cos2, cos2, y0, k0, a2, b2])
        inverse = np.linalg.inv(surface.axes)
        return cls(
            surface=surface,
            e=e,
            length=length,
            sin_a=sin_a,
            cos2=cos2,
            table=table,
            inverse=inverse,
            origin=-np.einsum("kij,kj->ki", inverse, surface.centre),
            bound_centres=np.concatenate([a, b, surface.centre]),
            bound_shapes=np.concatenate(
                [
                    np.concatenate([ra, rb])[:, None, None] ** 2 * np.eye(3),  # spheres: r^2 I
                    surface.axes @ surface.axes.transpose(0, 2, 1),
                ]
            ),
        )


def _quadric_bounds(centres: np.ndarray, shape: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Exact image bounds ``(4, n)`` (u_min, u_max, v_min, v_max) of ellipsoids in front of the
    camera, from their centres ``(n, 3)`` and ``shape = A @ A.T`` ``(n, 3, 3)`` (``A``'s columns
    are the semi-axes; a sphere has ``r**2 * I``).

    The plane ``x = k z`` through the camera touches the ellipsoid where
    ``(c_x - k c_z)**2 = M_xx - 2 k M_xz + k**2 M_zz``; the two roots bound ``u = f k + c``.
    """
    cz, mzz = centres[:, 2], shape[:, 2, 2]
    qa = cz * cz - mzz
    bounds = []
    for axis in (0, 1):
        cl, mll, mlz = centres[:, axis], shape[:, axis, axis], shape[:, axis, 2]
        qb = cl * cz - mlz
        root = np.sqrt(np.maximum(qb * qb - qa * (cl * cl - mll), 0.0))
        f, c = K[axis, axis], K[axis, 2]
        bounds += [c + f * (qb - root) / qa, c + f * (qb + root) / qa]
    return np.array(bounds)


def _candidate_pixels(scene: _Scene, K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(primitive, x, y) of the pixels that may see each primitive, sorted by primitive (cones,
    then ellipsoids): those in its screen box and, for a cone, near its projected axis."""
    cones = len(scene.e)
    bounds = _quadric_bounds(scene.bound_centres, scene.bound_shapes, K)
    ends = slice(0, cones), slice(cones, 2 * cones)
    low = np.concatenate([np.minimum(*(bounds[0::2, end] for end in ends)), bounds[0::2, 2 * cones :]], axis=1)
    high = np.concatenate([np.maximum(*(bounds[1::2, end] for end in ends)), bounds[1::2, 2 * cones :]], axis=1)
    first = np.clip(np.ceil(low - 0.5), 0, size).astype(np.int64)  # rows: x, y
    last = np.clip(np.floor(high + 0.5), -1, size - 1).astype(np.int64)
    width, height = np.maximum(last - first + 1, 0)
    counts = width * height
    starts = np.cumsum(counts) - counts
    prim = np.repeat(np.arange(len(counts)), counts)
    row, column = np.divmod(np.arange(len(prim)) - starts[prim], width[prim])
    px, py = first[0, prim] + column, first[1, prim] + row

    # A cone's image lies within the discs around its end spheres' images (centre and
    # half-diagonal of their boxes) and so within the larger radius of the segment joining them.
    middle = 0.5 * (bounds[0::2] + bounds[1::2])  # (2, 2P + E): u, v
    reach = 0.5 * np.hypot(bounds[1] - bounds[0], bounds[3] - bounds[2])
    axis = middle[:, ends[1]] - middle[:, ends[0]]
    per_cone = np.stack(
        [
            *middle[:, ends[0]],
            *axis,
            1.0 / np.maximum(np.sum(axis * axis, axis=0), 1e-12),
            (np.maximum(reach[ends[0]], reach[ends[1]]) + 0.5) ** 2,
        ]
    )
    u0, v0, du, dv, inverse_length2, radius2 = np.repeat(per_cone, counts[:cones], axis=1)
    n = len(u0)
    wu, wv = px[:n] - u0, py[:n] - v0
    h = np.minimum(np.maximum((wu * du + wv * dv) * inverse_length2, 0.0), 1.0)
    wu -= h * du
    wv -= h * dv
    keep = np.ones(len(prim), dtype=bool)
    keep[:n] = wu * wu + wv * wv <= radius2
    return prim[keep], px[keep], py[keep]


def _intersect_cones(scene: _Scene, counts: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance from the camera centre along unit rays ``d`` ``(3, n)`` to the round cones; the
    rays are sorted by cone, ``counts[p]`` of them for cone ``p``. ``inf`` where a ray misses.

    With ``y`` the axial and ``x`` the radial coordinate from ``a``, the lateral surface is
    ``x cos(alpha) = ra - y sin(alpha)`` for ``ra sin(alpha) <= y <= ra sin(alpha) + L cos^2(alpha)``
    (between the circles where it touches the spheres); the solid's nearest boundary point is
    the nearest of that surface's valid roots and the two spheres' entry points.
    """
    ex, ey, ez, ax, ay, az, length, ra, rb, y_low, y_high, c2, yc, k0, a2, b2 = np.repeat(scene.table, counts, axis=1)
    y1 = d[0] * ex + d[1] * ey + d[2] * ez  # d . e
    m3 = -(d[0] * ax + d[1] * ay + d[2] * az)  # d . (camera - a)
    nearest = np.full(len(y1), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        k2 = c2 - y1 * y1  # the lateral surface: k2 t^2 + 2 k1 t + k0 = 0
        k1 = m3 * c2 - yc * y1 + y_low * y1
        root = np.sqrt(k1 * k1 - k0 * k2)
        for t in ((-k1 - root) / k2, (-k1 + root) / k2):
            y = yc + t * y1
            nearest = np.where((t > 0) & (t < nearest) & (y >= y_low) & (y <= y_high), t, nearest)
        for m, centre2, r in ((m3, a2, ra), (m3 - length * y1, b2, rb)):  # end spheres: entry points
            t = -m - np.sqrt(m * m - centre2 + r * r)
            nearest = np.where((t > 0) & (t < nearest), t, nearest)
    return nearest


def _intersect_ellipsoids(scene: _Scene, counts: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance along unit rays ``d`` ``(3, n)`` to the ellipsoids; rays sorted by ellipsoid,
    ``counts[k]`` of them for ellipsoid ``k``. ``inf`` where a ray misses."""
    local = np.einsum("nij,jn->in", np.repeat(scene.inverse, counts, axis=0), d)  # in unit-sphere space
    o = np.repeat(scene.origin, counts, axis=0).T
    qa = np.sum(local * local, axis=0)
    qb = np.sum(local * o, axis=0)
    qc = np.sum(o * o, axis=0) - 1.0
    with np.errstate(invalid="ignore"):
        t = (-qb - np.sqrt(qb * qb - qa * qc)) / qa
    return np.where(t > 0, t, np.inf)


def _ray_cast(scene: _Scene, K: np.ndarray, size: int) -> _Hits:
    """Cast a ray through the centre of every pixel and keep each ray's nearest hit.

    Args:
        scene: the hand in the camera frame.
        K: intrinsics; pixel ``(row i, column j)`` is centred at ``x = j, y = i``.
        size: image side in pixels.

    Returns the hits; ``sample`` is the flat pixel index ``i * size + j``, in increasing order.
    """
    K = K.astype(np.float64)
    cones = len(scene.e)
    prim, px, py = _candidate_pixels(scene, K, size)
    counts = np.bincount(prim, minlength=len(scene.bound_centres) - cones)
    split = int(counts[:cones].sum())
    dx = (px - K[0, 2]) / K[0, 0]
    dy = (py - K[1, 2]) / K[1, 1]
    dz = 1.0 / np.sqrt(dx * dx + dy * dy + 1.0)
    d = np.stack([dx * dz, dy * dz, dz])
    t = np.concatenate(
        [
            _intersect_cones(scene, counts[:cones], d[:, :split]),
            _intersect_ellipsoids(scene, counts[cones:], d[:, split:]),
        ]
    )

    # depth test: the nearest hit of each pixel; of equally near ones, the lowest primitive
    pixel = py * size + px
    depth = np.full(size * size, np.inf)
    np.minimum.at(depth, pixel, t)
    nearest = np.flatnonzero((t == depth[pixel]) & (t < np.inf))
    owner = np.full(size * size, len(t))
    np.minimum.at(owner, pixel[nearest], nearest)
    sample = np.flatnonzero(owner < len(t))
    win = owner[sample]
    prim = prim[win]
    point = (t[win] * d[:, win]).T

    # outward normals, and the position along each cone's axis
    surface = scene.surface
    normal = np.empty_like(point)
    along = np.zeros(len(prim))
    is_cone = prim < cones
    i, p = prim[is_cone], point[is_cone]
    e, length, cos2 = scene.e[i], scene.length[i], scene.cos2[i]
    q = p - surface.a[i]
    y = np.sum(q * e, axis=1)
    y_low = surface.ra[i] * scene.sin_a[i]
    lateral = cos2[:, None] * q - e * (y - y_low)[:, None]  # gradient of the cone's equation
    lateral = np.where((y < y_low)[:, None], q, lateral)  # on sphere a
    normal[is_cone] = np.where((y > y_low + length * cos2)[:, None], p - surface.b[i], lateral)  # sphere b
    along[is_cone] = np.minimum(np.maximum(y / length, 0.0), 1.0)
    k = prim[~is_cone] - cones
    inverse = scene.inverse[k]
    local = np.einsum("nij,nj->ni", inverse, point[~is_cone] - surface.centre[k])
    normal[~is_cone] = np.einsum("nji,nj->ni", inverse, local)  # gradient of |A^-1 (p - c)|^2
    normal /= np.sqrt(np.sum(normal * normal, axis=1, keepdims=True))
    return _Hits(sample=sample, primitive=prim, point=point, normal=normal, along=along)


# ---------------------------------------------------------------------------------------------
# Appearance
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """A fixed read-only table of ``2**18`` standard normal float32 values (made once per process)."""
    table = np.random.default_rng(0x5EED).standard_normal(1 << 18, dtype=np.float32)
    table.setflags(write=False)
    return table


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of ``shape``: a window at a random offset in
    :func:`_noise_table` (several times faster than drawing it; large requests are drawn)."""
    count = math.prod(shape)
    table = _noise_table()
    if 2 * count > len(table):
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, len(table) - count + 1))
    return table[start : start + count].reshape(shape)


def _smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """A smooth random field ``(size, size, channels)`` float32 in about ``[0, 1]``: a
    ``cells x cells`` grid of uniform noise upsampled bicubically to at most ``2 * cells`` (and
    at least 16) pixels, then bilinearly to ``size`` (much cheaper than bicubic all the way)."""
    grid = rng.random((cells, cells, channels), dtype=np.float32)
    middle = min(size, max(16, 2 * cells))
    field = cv2.resize(grid, (middle, middle), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, channels)


@functools.lru_cache(maxsize=8)
def _ramp(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` float32 values evenly spaced over ``[-1, 1]`` and their squares (cached, read-only)."""
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    square = ramp * ramp
    ramp.setflags(write=False)
    square.setflags(write=False)
    return ramp, square


def _lighting_field(rng: np.random.Generator, size: int, slope: float, vignette: float) -> np.ndarray:
    """Uneven illumination ``(size, size, 1)`` float32 around 1: a random linear ramp and a vignette."""
    ramp, square = _ramp(size)
    gx, gy = rng.uniform(-slope, slope, 2).astype(np.float32)
    dark = np.float32(rng.uniform(0.0, vignette))
    across = 1.0 + gx * ramp - dark * square
    down = gy * ramp - dark * square
    return (across[None, :] + down[:, None])[..., None]


def _background(kind: str, style: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The background ``(size, size, 3)``, float32 RGB in ``[0, 255]``.

    Synthetic ``"green_screen"`` is :data:`~handaug.data.background.GREEN_SCREEN_RGB` and
    ``"white"`` is 255, flat and exact; the real ones are unevenly lit cloth or wall (the camera model adds the noise);
    ``"noise"`` is a smooth random colour texture with a brightness ramp, for both styles.
    The smooth ones are made at up to 32 x 32 pixels and upsampled bilinearly.
    """
    if style == "synthetic" and kind != "noise":
        colour = GREEN_SCREEN_RGB if kind == "green_screen" else (255, 255, 255)
        return np.broadcast_to(np.asarray(colour, dtype=np.float32), (size, size, 3)).copy()
    low = min(size, 32)
    if kind == "noise":
        coarse = _smooth_field(rng, low, int(rng.integers(2, 6)), 3)
        fine = _smooth_field(rng, low, int(rng.integers(8, 17)), 3)
        image = (191.25 * coarse + 63.75 * fine) * _lighting_field(rng, low, 0.3, 0.0)
    elif kind == "green_screen":  # green cloth: large folds, small creases, hue drift, uneven light
        colour = np.array([rng.uniform(10, 70), rng.uniform(120, 210), rng.uniform(20, 85)], dtype=np.float32)
        folds = 0.22 * _smooth_field(rng, low, 4, 1) + 0.1 * _smooth_field(rng, low, 11, 1) - 0.16
        drift = 0.94 + 0.12 * _smooth_field(rng, low, 3, 3)
        image = colour * drift * (_lighting_field(rng, low, 0.25, 0.12) + folds)
    else:  # a white wall or sheet of paper
        colour = rng.uniform(225, 250) * rng.uniform(0.98, 1.02, 3).astype(np.float32)
        image = colour * (_lighting_field(rng, low, 0.12, 0.08) + 0.08 * _smooth_field(rng, low, 3, 1) - 0.04)
    image = np.clip(image, 0.0, 255.0)
    return image if low == size else cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def _shade_synthetic(hits: _Hits, rng: np.random.Generator) -> np.ndarray:
    """Flat CG skin: one saturated colour, a hard light and Lambert shading quantised into a
    few bands (no texture, no noise). Returns ``(N, 3)`` float RGB in ``[0, 255]``."""
    skin = np.array([242.0, 150.0, 118.0]) + rng.uniform(-4.0, 4.0, 3)
    light = _normalized(np.array([-0.35, -0.55, -0.75]) + rng.uniform(-0.1, 0.1, 3))
    lambert = np.maximum(hits.normal @ light, 0.0)
    bands = 5
    shade = 0.4 + 0.6 * np.floor(lambert * bands + 0.5) / bands
    return skin * shade[:, None]


# Skin albedo (RGB) from light to dark brown; each real sample picks a point on this ramp.
_SKIN_RAMP = np.array(
    [[236, 198, 176], [222, 174, 146], [198, 142, 108], [160, 108, 76], [118, 78, 54], [80, 52, 38]], dtype=float
)
_NAIL_RGB = np.array([250.0, 222.0, 214.0])
_WRAP = np.array([0.75, 0.55, 0.5])  # how far light wraps past the terminator, per channel


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    position = rng.uniform(0.0, len(_SKIN_RAMP) - 1.0)
    low = min(int(position), len(_SKIN_RAMP) - 2)
    tone = _SKIN_RAMP[low] + (position - low) * (_SKIN_RAMP[low + 1] - _SKIN_RAMP[low])
    return tone * rng.uniform(0.94, 1.06, 3)


def _shade_real(hits: _Hits, geometry: _Geometry, environment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Textured skin under soft light. Returns ``(N, 3)`` float RGB in ``[0, 255]``.

    Albedo: a random skin tone, low-frequency blotches fixed to the hand, darker creases at
    the finger joints, lighter nails, per-sample pore noise. Light: a wrapped (half-Lambert)
    key light with a warm or cool cast, wrapping further in red (light scattered under the
    skin), ambient light, a mild Blinn-Phong highlight and spill of the ``environment``
    colour (the background's mean RGB) at grazing angles.
    """
    # per-image parameters
    skin = _skin_tone(rng)
    frequency = rng.normal(0.0, 1.0, (3, 4)) * (2 * np.pi / rng.uniform(0.012, 0.04, 4))  # blotches
    phase, amplitude = rng.uniform(0.0, 2 * np.pi, 4), rng.uniform(0.015, 0.035, 4)
    light = _normalized(np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.3), -1.0]))
    cast = rng.uniform(-0.08, 0.1)
    light_colour = np.array([1.0 + cast, 1.0, 1.0 - cast]) * rng.uniform(0.6, 0.85)
    ambient = rng.uniform(0.2, 0.35) * (0.85 + 0.15 * environment / max(float(environment.mean()), 1.0))
    gloss, shininess, spill = rng.uniform(0.03, 0.1), rng.uniform(8.0, 24.0), rng.uniform(0.05, 0.15)

    surface, normal = geometry.scene.surface, hits.normal
    part, along = surface.part[hits.primitive], hits.along
    local = (hits.point - geometry.translation) @ geometry.rotation  # hand frame
    blotches = np.sin(local @ frequency + phase) @ amplitude
    crease = 0.16 * np.exp(-((along / 0.1) ** 2)) + (part < 3) * (0.16 * np.exp(-(((1.0 - along) / 0.1) ** 2)))
    pores = 0.02 * _gaussian(rng, (len(part),))
    albedo = skin * (1.0 + blotches - (part > 0) * crease + pores)[:, None]
    nail = (part == 3) & (along > 0.35) & (np.einsum("ij,ij->i", normal, surface.dorsal[hits.primitive]) > 0.55)
    albedo[nail] = 0.55 * albedo[nail] + 0.45 * _NAIL_RGB

    view = hits.point / -np.sqrt(np.einsum("ij,ij->i", hits.point, hits.point))[:, None]
    diffuse = np.maximum(((normal @ light)[:, None] + _WRAP) / (1.0 + _WRAP), 0.0) ** 1.5
    half = _normalized(light + view)
    specular = gloss * np.maximum(np.einsum("ij,ij->i", normal, half), 0.0) ** shininess
    grazing = (1.0 - np.abs(np.einsum("ij,ij->i", normal, view))) ** 3
    colour = albedo * (diffuse * light_colour + ambient)
    colour += (255.0 * specular)[:, None] * light_colour + (spill * grazing)[:, None] * environment
    return np.clip(colour, 0.0, 255.0)


def _webcam(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap camera: white-balance jitter, lens blur (sigma 0.3-1 px), Gaussian sensor noise
    (std 2-6 levels) and JPEG compression (quality 40-90). Float RGB -> ``uint8`` RGB."""
    gains = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    sigma, noise, quality = rng.uniform(0.3, 1.0), rng.uniform(2.0, 6.0), int(rng.integers(40, 91))
    image = cv2.GaussianBlur(image.astype(np.float32) * gains, (0, 0), sigmaX=sigma)
    image += np.float32(noise) * _gaussian(rng, image.shape)
    image = (np.clip(image, 0.0, 255.0) + 0.5).astype(np.uint8)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV's codecs take BGR
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("cv2.imencode could not encode a JPEG")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _render_synthetic(centre: _Hits, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hard-edged composite: each pixel is its centre sample's colour. ``uint8 (H, W, 3)``."""
    image = background.reshape(-1, 3)
    image[centre.sample] = _shade_synthetic(centre, rng)
    return np.rint(image).astype(np.uint8).reshape(background.shape)


def _render_real(
    geometry: _Geometry, centre: _Hits, mask: np.ndarray, background: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Soft-edged composite seen through the camera model. ``uint8 (H, W, 3)``.

    The silhouette is antialiased by filtering: the hand's coverage is the hard mask seen
    through a small Gaussian footprint (sigma 0.7 px), and pixels just outside the mask take
    the skin colour of their neighbours (normalised convolution) in proportion to it.
    """
    size = mask.shape[0]
    flat_background = background.reshape(-1, 3)
    hand = np.zeros_like(flat_background)
    hand[centre.sample] = _shade_real(centre, geometry, flat_background.mean(axis=0), rng)
    hand = hand.reshape(size, size, 3)
    inside = mask.astype(np.float32) / 255.0
    coverage = cv2.GaussianBlur(inside, (0, 0), sigmaX=0.7)[..., None]
    nearby_skin = cv2.GaussianBlur(hand, (0, 0), sigmaX=0.7) / np.maximum(coverage, 1e-3)
    skin = hand + (1.0 - inside)[..., None] * nearby_skin
    return _webcam(background + coverage * (skin - background), rng)


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------
def _check_hand_scale(value: Any) -> tuple[float, float]:
    message = f"hand_scale must be a pair (low, high) with 0 < low <= high <= {_MAX_HAND_SCALE}, got {value!r}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(message)
    try:
        low, high = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not 0.0 < low <= high <= _MAX_HAND_SCALE:  # also rejects NaN
        raise ValueError(message)
    return low, high


class ProceduralHands:
    """Procedurally rendered hands with 21 keypoints, in a ``"synthetic"`` or ``"real"`` look.

    A map-style dataset (``__len__`` and ``__getitem__``) that ``torch.utils.data.DataLoader``
    accepts without this module importing torch. Samples are rendered on demand from
    ``(seed, index)``; nothing is read from disk or downloaded. Instances are picklable (for
    DataLoader workers).

    Args:
        style: ``"synthetic"`` (flat CG look, like SynthHands) or ``"real"`` (webcam look, like
            RealHands).
        image_size: side ``H == W`` of the square images, in pixels: an int ``>= 16``.
        length: the number of samples, ``>= 1``.
        seed: a non-negative int. Geometry comes from ``(seed, index)``, so both styles with
            the same seed show the same hands; give unpaired domains different seeds.
        background: one of :data:`~handaug.data.background.RENDERED_BACKGROUNDS`:
            ``"green_screen"`` (the synthetic style uses the flat chroma green
            :data:`~handaug.data.background.GREEN_SCREEN_RGB` exactly, the real style an
            unevenly lit green cloth), ``"noise"`` (a smooth random colour texture) or
            ``"white"`` (pure white for the synthetic style, an uneven near-white for the real
            one).
        hand_scale: ``(low, high)``: the range of the hand's projected size (the longer side of
            its keypoints' bounding box plus the flesh around them) as a fraction of the image
            side, ``0 < low <= high <= 1.5``.

    Each item is a ``dict``: ``image`` ``(H, W, 3) uint8`` RGB; ``mask`` ``(H, W) uint8``, 255
    on the hand (with a forearm stub) and 0 elsewhere; ``keypoints_2d`` ``(21, 2) float32``
    pixel coordinates (the centre of pixel ``(i, j)`` is ``x = j, y = i``); ``keypoints_3d``
    ``(21, 3) float32`` camera-frame metres (``X`` right, ``Y`` down, ``Z > 0`` forward);
    ``K`` ``(3, 3) float32`` with ``keypoints_2d == (K @ keypoints_3d.T).T[:, :2] / Z``;
    ``style`` (str) and ``index`` (int, non-negative). Rows follow :data:`~handaug.data.joints.JOINT_NAMES`.
    See the module docstring for the details.

    Raises:
        ValueError: for an unknown ``style`` or ``background``, an ``image_size`` that is not an
            integer ``>= 16`` (numpy integers count, bools do not), a ``length`` below 1, a negative ``seed`` or a bad ``hand_scale``.
    """

    def __init__(
        self,
        style: str = "synthetic",
        image_size: int = 64,
        length: int = 1000,
        seed: int = 0,
        background: str = "green_screen",
        hand_scale: tuple[float, float] = (0.35, 0.8),
    ) -> None:
        if not isinstance(style, str) or style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        if not isinstance(background, str) or background not in RENDERED_BACKGROUNDS:
            raise ValueError(f"background must be one of {RENDERED_BACKGROUNDS}, got {background!r}")
        self.style = style
        self.image_size = check_int(image_size, "image_size", _MIN_IMAGE_SIZE)
        self.length = check_int(length, "length", 1)
        self.seed = check_int(seed, "seed", 0)
        self.background = background
        self.hand_scale = _check_hand_scale(hand_scale)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(style={self.style!r}, image_size={self.image_size}, length={self.length}, "
            f"seed={self.seed}, background={self.background!r}, hand_scale={self.hand_scale})"
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Render sample ``index``; negative indices count from the end.

        Raises:
            IndexError: if ``index`` is outside ``[-len(self), len(self))``.
            TypeError: if ``index`` is not an integer.
        """
        position = operator.index(index)
        if not -self.length <= position < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of {self.length} samples")
        position %= self.length

        size = self.image_size
        geometry = _sample_geometry(self.seed, position, size, self.hand_scale)
        centre = _ray_cast(geometry.scene, geometry.K, size)
        mask = np.zeros(size * size, dtype=np.uint8)
        mask[centre.sample] = 255
        mask = mask.reshape(size, size)

        rng = np.random.default_rng([self.seed, position, _STYLE_CODES[self.style]])
        background = _background(self.background, self.style, size, rng)
        if self.style == "synthetic":
            image = _render_synthetic(centre, background, rng)
        else:
            image = _render_real(geometry, centre, mask, background, rng)
        return {
            "image": image,
            "mask": mask,
            "keypoints_2d": geometry.keypoints_2d,
            "keypoints_3d": geometry.keypoints_3d,
            "K": geometry.K,
            "style": self.style,
            "index": position,
        }
