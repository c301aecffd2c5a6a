"""``handaug-eval``: argument handling in-process, and one end-to-end run of ``all`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from handaug import save_generator
from handaug.cli.eval import main
from handaug.metrics.suite import checkpoint_label, parse_checkpoints
from handaug.registry import create_generator

SMALL = ["--image-size", "32", "--no-progress"]


@pytest.fixture
def ckpt(tmp_path):
    return str(save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "run" / "export", background=1.0, trained_with_masks=True))


def test_checkpoint_labels(tmp_path, ckpt):
    assert checkpoint_label("/a/msH-GAN4") == "msH-GAN4"
    assert checkpoint_label("/a/run7/export") == "run7/export"
    assert checkpoint_label("/a/g.safetensors") == "g"
    assert parse_checkpoints([ckpt, f"mine={ckpt}", ckpt]) == {"run/export": ckpt, "mine": ckpt, "run/export #2": ckpt}
    with pytest.raises(FileNotFoundError, match="ckpt '/nope' does not exist"):
        parse_checkpoints(["/nope"])


def test_fid_subcommand_prints_and_writes_table(tmp_path, ckpt, capsys):
    out = tmp_path / "report"
    assert main(["fid", "--ckpt", f"demo={ckpt}", "--out", str(out), "--features", "random_conv", "--fid-images", "12", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "### Table I: FID / KID" in printed
    assert "| synthetic (no translation) |" in printed and "| demo |" in printed
    assert "NOT FID/KID values" in printed
    assert (out / "fid.md").read_text(encoding="utf-8").startswith("### Table I")
    csv_lines = (out / "fid.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == "method,FID ↓,KID ↓,real images,generated images" and len(csv_lines) == 3
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["fid"]) == {"synthetic (no translation)", "demo"}
    assert results["fid"]["demo"]["n_fake"] == 12


def test_missing_inception_weights_is_a_clear_error(tmp_path, ckpt, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as err:
        main(["fid", "--ckpt", ckpt, "--out", str(tmp_path / "r"), "--fid-images", "4", *SMALL])
    assert err.value.code == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in capsys.readouterr().err


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["fid", "--ckpt", str(tmp_path / "missing"), "--features", "random_conv", *SMALL])
    assert err.value.code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["shape"])  # --ckpt is required
    assert "--ckpt" in capsys.readouterr().err


def test_grid_and_shape_subcommands(tmp_path, ckpt, capsys):
    out = tmp_path / "r"
    assert main(["grid", "--ckpt", ckpt, "--out", str(out), "--grid-images", "3", *SMALL]) == 0
    assert (out / "samples.png").stat().st_size > 1000
    assert main(["shape", "--ckpt", ckpt, "--out", str(out), "--shape-images", "6", "--segmenter-steps", "5", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "| source (no translation) |" in printed and "| run/export |" in printed
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "### Shape preservation" in report


@pytest.mark.slow
def test_all_end_to_end(tmp_path, ckpt):
    out = tmp_path / "report"
    cmd = [
        sys.executable, "-m", "handaug.cli.eval", "all", "--ckpt", ckpt, "--out", str(out), "--features", "random_conv",
        "--fid-images", "16", "--classifier-train", "16", "--classifier-test", "8", "--classifier-epochs", "1",
        "--shape-images", "8", "--segmenter-steps", "5", "--pose-train", "32", "--pose-test", "16", "--pose-epochs", "1",
        "--grid-images", "4", "--threads", "2", *SMALL,
    ]
    env = {**os.environ, "HANDAUG_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for heading in ("Table I", "Table II", "Table III", "Shape preservation", "Pose benefit"):
        assert f"### {heading}" in done.stdout
    names = {p.name for p in out.iterdir()}
    assert {
        "fid.md", "fid.csv", "classifier_binary.md", "classifier_three_class.csv", "shape.md", "pose_benefit.csv",
        "confusion_matrix_run_export.png", "samples.png", "report.md", "results.json",
    } <= names
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results) >= {"fid", "classifier", "shape", "pose_benefit"}
    assert [r["label"] for r in results["pose_benefit"].values()] == ["synthetic", "run/export", "real (oracle)"]
