"""handaug: make synthetic hand images look real with H-GAN, keypoints untouched.

Public entry points:

- :class:`handaug.SynthToReal`: the trained generator as an augmentation (appearance only;
  keypoints, masks and labels stay valid).
- :func:`handaug.save_generator` / :func:`handaug.load_generator`: the checkpoint format
  (safetensors weights + JSON config, never pickled).
- :mod:`handaug.registry`: create generators, discriminators, losses and datasets by name.
- :mod:`handaug.training`: the H-GAN LightningModule and the unpaired data module
  (imports Lightning; not imported here to keep ``import handaug`` light).
"""

from handaug._version import __version__
from handaug.checkpoint import GeneratorCheckpoint, load_generator, read_checkpoint, save_generator
from handaug.synth_to_real import SynthToReal

__all__ = [
    "GeneratorCheckpoint",
    "SynthToReal",
    "__version__",
    "load_generator",
    "read_checkpoint",
    "save_generator",
]
