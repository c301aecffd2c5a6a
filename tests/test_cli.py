"""``handaug-train`` and ``handaug`` end to end, in subprocesses as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from handaug import load_generator, read_checkpoint

# The demo's config with networks and images shrunk so each run takes seconds.
TINY = [
    "--model.generator_kwargs", '{"n_blocks": 1, "ngf": 8}',
    "--model.discriminator_kwargs", '{"ndf": 8, "vgg_weights": "random"}',
    "--data.synthetic_kwargs", '{"image_size": 48, "length": 40}',
    "--data.real_kwargs", '{"image_size": 48, "length": 40}',
    "--data.crop_size", "32", "--data.val_size", "48", "--data.val_count", "4",
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
]


def run(args, cwd, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.mark.slow
def test_demo_writes_export_samples_config_and_metrics(tmp_path):
    run(["-m", "handaug.cli.train", "--demo", "--trainer.default_root_dir", "out", *TINY], cwd=tmp_path)
    root = tmp_path / "out"
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert len(list((root / "samples").glob("*.png"))) == 1
    assert list(root.rglob("config.yaml")) and list(root.rglob("hparams.yaml"))
    ckpt = read_checkpoint(root / "export")
    assert ckpt.config["training"]["model"]["discriminator"] == "perceptual"
    assert ckpt.config["training"]["batches"] == 2
    generator = load_generator(root / "export")
    x = torch.rand(3, 3, 64, 80) * 2 - 1
    with torch.no_grad():
        y = generator(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(x, y)


@pytest.mark.slow
def test_resume_from_last_continues_the_step_count(tmp_path):
    args = ["-m", "handaug.cli.train", "--demo", "--trainer.default_root_dir", "out", *TINY]
    run(args, cwd=tmp_path)
    first = read_checkpoint(tmp_path / "out" / "export").config["training"]
    run([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"], cwd=tmp_path)
    second = read_checkpoint(tmp_path / "out" / "export").config["training"]
    assert (first["epochs_completed"], first["optimizer_steps"]) == (1, 4)
    assert (second["epochs_completed"], second["optimizer_steps"]) == (2, 8)


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    run(["-m", "handaug.cli.train", "--demo", "--trainer.default_root_dir", "out", "--trainer.strategy", "ddp",
         "--trainer.devices", "2", "--trainer.accelerator", "cpu", *TINY], cwd=tmp_path)
    training = read_checkpoint(tmp_path / "out" / "export").config["training"]
    assert training["world_size"] == 2
    assert training["batches"] == 2 and training["optimizer_steps"] == 4


def test_print_config_lists_model_data_and_trainer_options(tmp_path):
    out = run(["-m", "handaug.cli.train", "--demo", "--print_config"], cwd=tmp_path).stdout
    for expected in ("generator: resnet", "discriminator: perceptual", "lambda_cycle: 10.0", "lambda_identity: 0.5",
                     "crop_size: 48", "synthetic: procedural", "max_epochs: 4", "ckpt_path: null"):
        assert expected in out, expected


def test_bad_option_names_the_argument(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.train", "--demo", "--model.lambda_cycle", "lots"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "lambda_cycle" in proc.stderr


def test_handaug_plugins_lists_builtin_networks(tmp_path):
    out = run(["-m", "handaug.cli.main", "plugins"], cwd=tmp_path).stdout
    for name in ("resnet", "patch", "pixel", "perceptual", "procedural", "folder"):
        assert f" {name} " in out
    data = json.loads(run(["-m", "handaug.cli.main", "plugins", "--json"], cwd=tmp_path).stdout)
    assert {"kind": "generator", "name": "resnet", "plugin": "handaug.plugins.resnet", "distribution": "handaug",
            "version": data["registered"][0]["version"]} in data["registered"]
