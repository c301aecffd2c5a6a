"""Readers of public hand-pose datasets, each a map-style dataset of handaug's sample dicts.

Every reader is built as ``Reader(root, **options)`` and yields dicts with ``image``
``(H, W, 3)`` uint8 RGB, ``mask`` ``(H, W)`` uint8 {0, 255} where the dataset has or implies
one, ``keypoints_2d`` ``(21, 2)`` float32 pixels, ``keypoints_3d`` ``(21, 3)`` float32 metres
and ``K`` ``(3, 3)`` float32 where available, and ``path``; keypoints follow handaug's joint
order (:mod:`handaug.data.joints`). ``image_paths`` lists every image, aligned with the indices.
They are registered by name in :mod:`handaug.data.builtin` (``"synthhands:/data/SynthHands"``).
"""

from handaug.data.readers.freihand import FreiHAND
from handaug.data.readers.ganerated import GANeratedHands
from handaug.data.readers.realhands import RealHands
from handaug.data.readers.rhd import RHD, RestrictedUnpickler, safe_load_pickle
from handaug.data.readers.synthhands import SynthHands

__all__ = ["RHD", "FreiHAND", "GANeratedHands", "RealHands", "RestrictedUnpickler", "SynthHands", "safe_load_pickle"]
