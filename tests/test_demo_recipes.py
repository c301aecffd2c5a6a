"""``handaug-train --demo``: which recipe runs (CPU or GPU) and why, and the GPU recipe on the CPU at tiny size."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from handaug import read_checkpoint
from handaug.cli import train as cli

TINY = [
    "--model.generator_kwargs", '{"n_blocks": 1, "ngf": 8, "residual": true, "residual_space": "log"}',
    "--model.discriminator_kwargs", '{"ndf": 8, "vgg_weights": "random"}',
    "--data.synthetic_kwargs", '{"image_size": 48, "length": 40}',
    "--data.real_kwargs", '{"image_size": 48, "length": 40, "background": "white"}',
    "--data.crop_size", "32", "--data.val_size", "48", "--data.val_count", "4", "--data.batch_size", "4",
    "--data.num_workers", "0",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
]


def _run(args, cwd, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "handaug.cli.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("argv", "cuda", "recipe", "why"),
    [
        ([], False, "cpu", "no CUDA device"),
        ([], True, "gpu", "a CUDA device is available"),
        (["--trainer.accelerator", "cpu"], True, "cpu", "--trainer.accelerator cpu"),
        (["--trainer.accelerator=gpu"], True, "gpu", "--trainer.accelerator gpu"),
        (["--trainer.accelerator", "auto"], True, "gpu", "a CUDA device is available"),
        (["--trainer.accelerator", "auto"], False, "cpu", "no CUDA device"),
        (["--demo-recipe", "cpu"], True, "cpu", "--demo-recipe cpu"),
        (["--demo-recipe=gpu", "--trainer.accelerator", "cpu"], False, "gpu", "--demo-recipe gpu"),
    ],
)
def test_demo_recipe_choice(argv, cuda, recipe, why):
    chosen, reason = cli.choose_demo_recipe(argv, cuda_available=cuda)
    assert chosen == recipe and why in reason


def test_demo_arguments_name_the_config_and_say_why():
    args, line = cli.demo_arguments(["--trainer.max_epochs", "1"], cuda_available=False)
    assert args == ["--config", str(cli.demo_config_path("cpu")), "--trainer.max_epochs", "1"]
    assert line == "handaug-train --demo: the CPU recipe (demo.yaml), because no CUDA device"
    args, line = cli.demo_arguments(["--demo-recipe", "gpu", "--trainer.accelerator", "cpu"], cuda_available=False)
    assert args == ["--config", str(cli.demo_config_path("gpu")), "--trainer.accelerator", "cpu"]  # the flag is used up
    assert "GPU recipe (demo_gpu.yaml)" in line
    with pytest.raises(SystemExit, match="needs a CUDA device.*--trainer.accelerator cpu"):
        cli.demo_arguments(["--demo-recipe", "gpu"], cuda_available=False)
    with pytest.raises(SystemExit, match="--demo-recipe must be one of cpu, gpu, got 'tpu'"):
        cli.demo_arguments(["--demo-recipe", "tpu"], cuda_available=True)
    with pytest.raises(SystemExit, match="--demo-recipe needs a value"):
        cli.demo_arguments(["--demo-recipe"], cuda_available=True)
    with pytest.raises(ValueError, match="recipe must be one of"):
        cli.demo_config_path("large")


def test_bf16_is_the_default_precision_only_on_gpus_with_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.default_precision("auto", "auto") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert cli.default_precision("auto", "auto") == "bf16-mixed"
    assert cli.default_precision("gpu", "ddp") == "bf16-mixed"
    assert cli.default_precision("cpu", "auto") is None
    assert cli.default_precision("gpu", "ddp_fork") is None  # CUDA must stay untouched before the fork
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert cli.default_precision("gpu", "auto") is None
    # cuDNN's autotuner is switched on wherever training runs on CUDA, bf16 or not.
    assert cli.trains_on_cuda("gpu", "auto") and cli.trains_on_cuda("auto", "ddp")
    assert not cli.trains_on_cuda("cpu", "auto") and not cli.trains_on_cuda("gpu", "ddp_notebook")


def test_the_gpu_recipe_parses_with_the_papers_sizes(tmp_path):
    proc = _run(["--demo", "--demo-recipe", "gpu", "--trainer.accelerator", "cpu", "--print_config"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, config = proc.stdout.split("\n", 1)
    assert first.startswith("handaug-train --demo: the GPU recipe (demo_gpu.yaml)")
    for expected in ("ngf: 64", "ndf: 64", "image_size: 256", "crop_size: 128", "val_size: 256", "residual: true",
                     "max_time: 00:00:0", "accelerator: cpu"):
        assert expected in config, expected


def test_demo_recipe_without_demo_is_refused(tmp_path):
    proc = _run(["--demo-recipe", "gpu", "--print_config"], cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "--demo-recipe goes with --demo" in proc.stderr


@pytest.mark.slow
def test_the_gpu_recipe_trains_on_the_cpu_at_tiny_size(tmp_path):
    proc = _run(["--demo", "--demo-recipe", "gpu", "--trainer.accelerator", "cpu", "--trainer.default_root_dir", "out",
                 *TINY], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("handaug-train --demo: the GPU recipe (demo_gpu.yaml), because asked for with --demo-recipe gpu")
    training = read_checkpoint(tmp_path / "out" / "export").config["training"]
    assert training["batches"] == 2 and training["precision"] == "32-true"
    assert training["model"]["extra_losses"] == ["colour_statistics"]
