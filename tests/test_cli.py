"""``handaug-train`` and ``handaug`` end to end, in subprocesses as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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


def _fail(args, cwd, timeout=120):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    """kill -9 a real handaug-train while it trains; `--ckpt_path last` then finishes the run, and the exported
    generator is bit for bit the one of a run that was never interrupted."""
    args = ["-m", "handaug.cli.train", "--demo", *TINY, "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "4",
            "--checkpointing.every_n_batches", "1"]
    run([*args, "--trainer.default_root_dir", "straight"], cwd=tmp_path)

    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, *args, "--trainer.default_root_dir", "killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writes, deadline = set(), time.monotonic() + 240
    try:
        while len(writes) < 5 and proc.poll() is None and time.monotonic() < deadline:
            if last.exists():
                writes.add(last.stat().st_mtime_ns)
            time.sleep(0.005)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "export").exists(), "the run finished before it could be killed"
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 24  # killed part-way: 3 epochs of 4 batches are 24 optimiser steps

    run([*args, "--trainer.default_root_dir", "killed", "--ckpt_path", "last"], cwd=tmp_path)
    straight, resumed = (load_generator(tmp_path / d / "export").state_dict() for d in ("straight", "killed"))
    assert read_checkpoint(tmp_path / "killed" / "export").config["training"]["optimizer_steps"] == 24
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name


def test_ckpt_path_last_without_a_checkpoint_is_an_error_and_auto_starts_a_new_run(tmp_path):
    args = ["-m", "handaug.cli.train", "--demo", *TINY, "--trainer.default_root_dir", "out"]
    err = _fail([*args, "--ckpt_path", "last"], cwd=tmp_path)
    assert "no checkpoint to resume" in err and os.path.join("out", "checkpoints", "last.ckpt") in err
    run([*args, "--ckpt_path", "auto"], cwd=tmp_path)
    assert (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()


def test_a_new_run_never_overwrites_an_earlier_runs_checkpoint_unless_asked(tmp_path):
    last = tmp_path / "out" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"two days of training")
    args = ["-m", "handaug.cli.train", "--demo", *TINY, "--trainer.default_root_dir", "out"]
    err = _fail([*args, "--overwrite_run", "false"], cwd=tmp_path)
    assert "earlier run's checkpoint" in err and "--ckpt_path last" in err
    assert last.read_bytes() == b"two days of training"
    run([*args, "--overwrite_run", "true"], cwd=tmp_path)
    assert torch.load(last, weights_only=True)["global_step"] == 4


def test_demo_refuses_data_folders(tmp_path):
    err = _fail(["-m", "handaug.cli.train", "--demo", "--data.synthetic", "/data/synth"], cwd=tmp_path)
    assert "--demo" in err and "--data.synthetic" in err


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
                     "crop_size: 64", "crop_mode: hand", "residual: true", "residual_space: log", "synthetic: procedural", "max_epochs: 4", "ckpt_path: null"):
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


def _demo_inner_structure(tmp_path, name, residual):
    """Trains the demo's recipe for 6 batches (narrower networks, fewer hands) and returns the last
    val/inner_structure that handaug-train logged."""
    import csv

    from handaug.cli.train import main as train_main

    root = tmp_path / name
    train_main([
        "--demo", "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
        "--model.generator_kwargs", json.dumps({"n_blocks": 4, "ngf": 16, "residual": residual, "residual_space": "log" if residual else "atanh"}),
        "--model.discriminator_kwargs", '{"ndf": 16, "vgg_weights": "random"}',
        "--data.synthetic_kwargs", '{"image_size": 128, "length": 48}',
        "--data.real_kwargs", '{"image_size": 128, "length": 48, "background": "white"}',
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6", "--data.val_count", "8",
    ])  # fmt: skip
    rows = list(csv.DictReader(open(next(root.glob("lightning_logs/version_*/metrics.csv")))))
    return [float(r["val/inner_structure"]) for r in rows if r.get("val/inner_structure")][-1]


@pytest.mark.slow
def test_the_demo_recipe_keeps_the_inside_of_the_hand(tmp_path, monkeypatch):
    """The demo's residual generator keeps the fingers from the first step; the plain one, trained
    the same way, paints blobs (inner structure measured by handaug.metrics.structure)."""
    monkeypatch.chdir(tmp_path)
    kept = _demo_inner_structure(tmp_path, "residual", residual=True)
    plain = _demo_inner_structure(tmp_path, "plain", residual=False)
    print(f"inner structure after 6 batches: residual {kept:.3f}, plain {plain:.3f}")
    assert kept >= 0.9, kept
    assert plain < 0.6, plain
