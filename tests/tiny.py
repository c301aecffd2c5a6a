"""Small networks, data modules, trainers and checkpoints for fast tests (import them: ``from tiny import tiny_hgan``).

The same code paths as the paper's sizes, small enough to train a few steps on the CPU in seconds.
Lightning, the HGAN module and the data module are imported inside the helpers, so a test file
that needs only the constants or a checkpoint pool does not load the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from handaug import save_generator
from handaug.registry import create_generator

#: Small networks for fast tests: the same code paths as the paper's sizes.
TINY_GENERATOR = {"n_blocks": 2, "ngf": 8}
TINY_PERCEPTUAL = {"ndf": 8, "vgg_weights": "random"}


def tiny_hgan(**overrides: Any) -> Any:
    """An HGAN small enough to train for a few steps on the CPU in seconds."""
    from handaug.training import HGAN  # deferred: the training stack (Lightning)

    kwargs = dict(generator_kwargs=TINY_GENERATOR, discriminator="perceptual", discriminator_kwargs=TINY_PERCEPTUAL,
                  lr=2e-4, pool_size=4)
    kwargs.update(overrides)
    return HGAN(**kwargs)


def tiny_datamodule(**overrides: Any) -> Any:
    """Procedural hands at 48 px, 32 px crops, 4 images a batch."""
    from handaug.data.datamodule import UnpairedDataModule  # deferred: a LightningDataModule

    kwargs = dict(synthetic_kwargs={"image_size": 48, "length": 40}, real_kwargs={"image_size": 48, "length": 40},
                  crop_size=32, val_size=48, val_count=4, batch_size=4, num_workers=0)
    kwargs.update(overrides)
    return UnpairedDataModule(**kwargs)


def tiny_trainer(root: str | Path, **overrides: Any) -> Any:
    """A one-epoch CPU Trainer under ``root``: no logger, checkpoints, progress bar or sanity steps."""
    import lightning as L  # deferred: only the tests that train load Lightning

    kwargs = dict(default_root_dir=str(root), accelerator="cpu", devices=1, max_epochs=1, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  num_sanity_val_steps=0, deterministic=True)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def tiny_pool(root: Path, seeds: tuple[int, ...] = (0, 1)) -> list[Path]:
    """Tiny masked-trained generators with different weights, one per seed, saved under ``root``: a pool."""
    paths = []
    for seed in seeds:
        torch.manual_seed(seed)
        generator = create_generator("resnet", n_blocks=1, ngf=8)
        paths.append(save_generator(generator, root / f"g{seed}", background=1.0, trained_with_masks=True))
    return paths

