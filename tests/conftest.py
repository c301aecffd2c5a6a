"""Test setup: offline, CPU-only, small randomly initialised networks.

No test downloads anything: HANDAUG_OFFLINE turns pretrained-weight downloads into the
"file missing" error, and networks that normally use ImageNet VGG16 weights are built with
``vgg_weights="random"`` (the tests check behaviour, not the paper's numbers).
"""

from __future__ import annotations

import os

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
os.environ["HANDAUG_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

#: Small networks for fast tests: the same code paths as the paper's sizes.
TINY_GENERATOR = {"n_blocks": 2, "ngf": 8}
TINY_PERCEPTUAL = {"ndf": 8, "vgg_weights": "random"}


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Each test sees plugins loaded from scratch (some tests install throwaway ones)."""
    from handaug.plugin_manager import reset_plugins

    reset_plugins()
    yield
    reset_plugins()


def tiny_hgan(**overrides):
    """An HGAN small enough to train for a few steps on the CPU in seconds."""
    from handaug.training import HGAN

    kwargs = dict(generator_kwargs=TINY_GENERATOR, discriminator="perceptual", discriminator_kwargs=TINY_PERCEPTUAL,
                  lr=2e-4, pool_size=4)
    kwargs.update(overrides)
    return HGAN(**kwargs)


def tiny_datamodule(**overrides):
    """Procedural hands at 48 px, 32 px crops, 4 images a batch."""
    from handaug.data.datamodule import UnpairedDataModule

    kwargs = dict(synthetic_kwargs={"image_size": 48, "length": 40}, real_kwargs={"image_size": 48, "length": 40},
                  crop_size=32, val_size=48, val_count=4, batch_size=4, num_workers=0)
    kwargs.update(overrides)
    return UnpairedDataModule(**kwargs)


def tiny_trainer(root, **overrides):
    import lightning as L

    kwargs = dict(default_root_dir=str(root), accelerator="cpu", devices=1, max_epochs=1, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  num_sanity_val_steps=0, deterministic=True)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def tiny_pool(root, seeds=(0, 1)):
    """Tiny masked-trained generators with different weights, one per seed, saved under ``root``: a pool."""
    from handaug import save_generator
    from handaug.registry import create_generator

    paths = []
    for seed in seeds:
        torch.manual_seed(seed)
        generator = create_generator("resnet", n_blocks=1, ngf=8)
        paths.append(save_generator(generator, root / f"g{seed}", background=1.0, trained_with_masks=True))
    return paths

