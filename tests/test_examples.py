"""The examples/ scripts run end to end (in subprocesses) on procedural hands with a tiny random checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

from handaug import save_generator
from handaug.registry import create_generator

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    generator = create_generator("resnet", n_blocks=1, ngf=8)
    path = tmp_path_factory.mktemp("examples") / "ckpt"
    return save_generator(generator, path, background=1.0, trained_with_masks=True)


def run_example(name, *args, cwd):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["albumentations_pipeline", "kornia_pipeline", "torchvision_pipeline"])
def test_example_runs_and_writes_the_before_after_png(ckpt, tmp_path, name):
    out = tmp_path / "out" / f"{name}.png"
    result = run_example(name, "--ckpt", ckpt, "--out", out, "--count", 3, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "identical to the geometric-only path" in result.stdout and str(out) in result.stdout
    image = cv2.imread(str(out))
    assert image.shape == (2 * 128, 3 * 128, 3)  # two rows (before, after) of 3 hands of 128 px
    top, bottom = image[: image.shape[0] // 2], image[image.shape[0] // 2 :]
    assert (top != bottom).any()  # the translated row differs
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing else written


@pytest.mark.slow
@pytest.mark.parametrize("name", ["albumentations_pipeline", "kornia_pipeline", "torchvision_pipeline"])
def test_example_without_checkpoint_says_how_to_make_one(tmp_path, name):
    result = run_example(name, cwd=tmp_path)  # default --ckpt handaug-demo/export does not exist here
    assert result.returncode == 1
    assert "no checkpoint at handaug-demo/export: run `handaug-train --demo` first" in result.stderr
    assert not (tmp_path / "examples-out").exists()
