"""The Table I presets: valid configs with the reference's settings, and a preset run end to end on
SynthHands/RealHands fixtures in their published layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_readers import make_realhands, make_synthhands

from handaug import read_checkpoint
from handaug.cli.eval import main as eval_main
from handaug.cli.train import main as train_main

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
PRESETS = ["msh-gan4", "msh-gan6", "pixcyclegan4", "pixcyclegan6", "geocongan"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_hold_the_reference_settings(name, capsys):
    with pytest.raises(SystemExit) as done:
        train_main(["--config", str(CONFIGS / f"{name}.yaml"), "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model, data, trainer = config["model"], config["data"], config["trainer"]
    assert model["generator_kwargs"]["norm"] == "batch" and model["generator_kwargs"]["dropout"] == 0.5  # item 4
    assert data["batch_size"] == 8 and data["val_batch_size"] == 4
    assert model["composite_reconstructions"] is False  # item 5
    assert (data["pairing"], data["epoch_length"]) == ("index", "min")  # item 6
    assert data["crop_mode"] == "hand" and data["crop_size"] == 128  # item 1
    assert (data["val_crop"], data["val_crop_offset"], data["val_size"]) == ("centroid", [20, -100], 256)
    assert config["selection"]["monitor"] == "val/fid" and config["selection"]["save_top_k"] == 2  # item 2
    assert trainer["val_check_interval"] == 0.2 and data["val_count"] == 1000
    assert trainer["precision"] == "32-true"  # item 9
    assert data["synthetic_kwargs"]["noobject_only"] is True and data["synthetic_val_kwargs"] == {"split": "val"}  # item 7
    assert data["real_kwargs"]["split"] == "train" and data["real_val_kwargs"] == {"split": "val"}
    if name == "geocongan":  # item 8: a pretrained, frozen SilNet
        assert model["extra_loss_kwargs"]["geoconsistency"]["silnet_checkpoint"] == "runs/silnet"


@pytest.mark.slow
def test_a_preset_trains_selects_exports_and_is_evaluated_by_the_reference_protocol(tmp_path, monkeypatch, capsys):
    make_synthhands(tmp_path / "SynthHands", n=26, size=96)
    make_realhands(tmp_path / "RealHands", n=26, size=96, extra_bad=False)
    monkeypatch.chdir(tmp_path)
    synth, real = f"synthhands:{tmp_path / 'SynthHands'}", f"realhands:{tmp_path / 'RealHands'}"
    split = {"test_size": 20, "val_size": 2}  # the protocol needs 20 test frames (KID subsets of n // 10)
    train_main([
        "--config", str(CONFIGS / "msh-gan4.yaml"), "--trainer.default_root_dir", "run",
        "--data.synthetic", synth, "--data.real", real,
        "--data.synthetic_kwargs", str({"noobject_only": True, "mask_tolerance": 0, "split": "train", **split}),
        "--data.synthetic_val_kwargs", str({"split": "val", **split}),
        "--data.real_kwargs", str({"split": "train", **split}), "--data.real_val_kwargs", str({"split": "val", **split}),
        "--data.crop_size", "32", "--data.val_size", "64", "--data.val_crop_offset", "[4, -8]", "--data.val_count", "2",
        "--data.batch_size", "2", "--data.val_batch_size", "2", "--data.num_workers", "0",
        "--model.generator_kwargs", '{"n_blocks": 1, "ngf": 8, "norm": "batch", "dropout": 0.5}',
        "--model.discriminator_kwargs", '{"ndf": 8, "vgg_weights": "random"}',
        "--selection.features", "random_conv",
        "--trainer.max_epochs", "2", "--trainer.val_check_interval", "1.0", "--trainer.limit_train_batches", "2",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    run = tmp_path / "run"
    kept = list((run / "checkpoints").glob("best-step*.ckpt"))
    assert len(kept) == 2  # two epochs with one validation each: both states kept
    training = read_checkpoint(run / "export").config["training"]
    assert training["selection"]["monitor"] == "val/fid" and training["selection"]["checkpoint"] in {p.name for p in kept}
    assert training["data"]["crop_mode"] == "hand" and training["data"]["val_crop_offset"] == [4, -8]
    assert training["model"]["composite_reconstructions"] is False

    assert eval_main([
        "fid", "--protocol", "hgan", "--ckpt", f"msh={run / 'export'}", "--out", str(tmp_path / "report"),
        "--synthetic", synth, "--real", real, "--features", "random_conv", "--fid-images", "20",
        "--crop-size", "64", "--crop-offset", "4", "-8", "--no-progress",
    ]) == 0  # fmt: skip
    assert "| msh |" in capsys.readouterr().out
