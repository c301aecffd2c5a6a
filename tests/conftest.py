"""Test setup: offline, CPU-only, plugins fresh for every test (the tiny networks are in tiny.py).

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

from handaug.plugin_manager import reset_plugins  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Each test sees plugins loaded from scratch (some tests install throwaway ones)."""
    reset_plugins()
    yield
    reset_plugins()
