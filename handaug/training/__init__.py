"""Training H-GAN with Lightning: the module, the data module, losses, the image pool, callbacks."""

from handaug.data.datamodule import UnpairedDataModule
from handaug.training.callbacks import GeneratorExport, SampleGridWriter
from handaug.training.image_pool import ImagePool
from handaug.training.losses import lsgan_discriminator_loss, lsgan_generator_loss
from handaug.training.module import HGAN, composite
from handaug.training.resume import ResumeCheckpoint
from handaug.training.selection import CheckpointSelection
from handaug.training.validation_measures import PoseConsistencyMonitor, StructureMonitor

__all__ = [
    "HGAN",
    "CheckpointSelection",
    "PoseConsistencyMonitor",
    "ResumeCheckpoint",
    "StructureMonitor",
    "GeneratorExport",
    "ImagePool",
    "SampleGridWriter",
    "UnpairedDataModule",
    "composite",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]
