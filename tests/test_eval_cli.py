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


def test_structure_subcommand(tmp_path, ckpt, capsys):
    out = tmp_path / "r"
    assert main(["structure", "--ckpt", f"demo={ckpt}", "--out", str(out), "--structure-images", "6", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "### Inner structure" in printed and "| demo |" in printed and "5 px windows" in printed
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    row = results["structure"]["demo"]
    assert row["n"] + row["n_excluded"] == 6 and row["window"] == 5
    assert (out / "structure.csv").read_text(encoding="utf-8").startswith("checkpoint,inner structure ↑")
    with pytest.raises(SystemExit) as err:
        main(["structure", "--ckpt", ckpt, "--structure-window", "4", *SMALL])
    assert err.value.code == 2 and "odd integer" in capsys.readouterr().err


def test_pose_consistency_subcommand_saves_the_oracle(tmp_path, ckpt, capsys):
    from handaug.metrics.pose_consistency import REAL_LABEL, SYNTHETIC_LABEL, load_oracle

    out = tmp_path / "r"
    oracle = tmp_path / "oracle.safetensors"
    args = ["--pose-train", "16", "--pose-test", "8", "--pose-epochs", "1", "--save-oracle", str(oracle), *SMALL]
    assert main(["pose-consistency", "--ckpt", f"demo={ckpt}", "--out", str(out), *args]) == 0
    assert "### Pose consistency" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(results["pose_consistency"]) == [REAL_LABEL, SYNTHETIC_LABEL, "demo"]
    assert results["pose_consistency"][REAL_LABEL]["n_train"] == 16
    _, settings = load_oracle(oracle)
    assert settings["image_size"] == 32
    with pytest.raises(SystemExit) as err:
        main(["pose-consistency", "--ckpt", ckpt, "--out", str(out), "--save-oracle", str(tmp_path / "oracle.pt"), *SMALL])
    assert err.value.code == 2 and "must be a path ending in .safetensors" in capsys.readouterr().err


def test_the_pose_measures_train_one_oracle(tmp_path, ckpt, monkeypatch):
    import handaug.metrics.suite as suite_module
    from handaug.metrics.suite import EvalSettings, EvalSuite

    calls = []
    real_train_oracles = suite_module.train_oracles

    def counting(**kwargs):
        calls.append(kwargs)
        return real_train_oracles(**kwargs)

    monkeypatch.setattr(suite_module, "train_oracles", counting)
    settings = EvalSettings(image_size=32, pose_train=16, pose_test=8, pose_epochs=1, pose_width=4, show_progress=False)
    suite = EvalSuite({"demo": ckpt}, out=tmp_path / "r", settings=settings)
    suite.run(("pose-benefit", "pose-consistency"))
    assert len(calls) == 1
    oracle_row = suite.results["pose_benefit"]["real (oracle)"]
    reference = suite.results["pose_consistency"]["real-style (oracle's domain)"]
    # the same models on the same test hands
    assert oracle_row["pck"] == reference["pck"] and oracle_row["pixel_error"] == reference["pixel_error"]


@pytest.mark.slow
def test_all_end_to_end(tmp_path, ckpt):
    out = tmp_path / "report"
    cmd = [
        sys.executable, "-m", "handaug.cli.eval", "all", "--ckpt", ckpt, "--out", str(out), "--features", "random_conv",
        "--fid-images", "16", "--classifier-train", "16", "--classifier-test", "8", "--classifier-epochs", "1",
        "--shape-images", "8", "--segmenter-steps", "5", "--structure-images", "8", "--pose-train", "32", "--pose-test", "16", "--pose-epochs", "1",
        "--grid-images", "4", "--threads", "2", *SMALL,
    ]
    env = {**os.environ, "HANDAUG_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for heading in ("Table I", "Table II", "Table III", "Shape preservation", "Inner structure", "Pose benefit", "Pose consistency"):
        assert f"### {heading}" in done.stdout
    names = {p.name for p in out.iterdir()}
    assert {
        "fid.md", "fid.csv", "classifier_binary.md", "classifier_three_class.csv", "shape.md", "structure.md", "structure.csv",
        "pose_benefit.csv", "pose_consistency.md", "pose_consistency.csv",
        "confusion_matrix_run_export.png", "samples.png", "report.md", "results.json",
    } <= names
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results) >= {"fid", "classifier", "shape", "structure", "pose_benefit", "pose_consistency"}
    assert [r["label"] for r in results["pose_benefit"].values()] == ["synthetic", "run/export", "real (oracle)"]
