"""Command-line values that cannot work are one usage line, before anything is built (issue 20, items 10, 11, 15).

Each refused value used to reach the network, the data or torch: a memory-error traceback (a 60-level
SilNet, a 100000-px crop), a run that "succeeded" with NaN weights, or an odd message. The training
and evaluation entry points are replaced by a tripwire here, so a value that is not refused fails the
test instead of allocating gigabytes.
"""

from __future__ import annotations

import pytest

from handaug.cli import eval as eval_cli
from handaug.cli import silnet as silnet_cli


@pytest.fixture
def tripwire(monkeypatch):
    """Nothing may be trained or measured: parsing must refuse the value first."""
    import handaug.silnet.pretraining as pretraining

    def reached(*args, **kwargs):
        pytest.fail("a refused value reached training or evaluation")

    monkeypatch.setattr(pretraining, "pretrain_silnet", reached)
    monkeypatch.setattr(eval_cli, "EvalSuite", reached)
    monkeypatch.setattr(eval_cli, "_run_hgan_protocol", reached)


def refused(main, argv, capsys):
    """Run ``main(argv)``: a usage error (exit 2) whose last stderr line is returned."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines)
    return lines[-1]


# ----------------------------------------------------------------------------- 10. sizes
@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--depth", "60"], "argument --depth: expected an integer in [1, 8], got 60"),
     (["--base-channels", "100000"], "argument --base-channels: expected an integer in [1, 256], got 100000"),
     (["--crop-size", "100000"], "argument --crop-size: expected an integer in [16, 4096], got 100000"),
     (["--crop-size", "1"], "argument --crop-size: expected an integer in [16, 4096], got 1"),
     (["--val-size", "60000"], "argument --val-size: expected an integer in [16, 4096], got 60000"),
     (["--batch-size", "10000000"], "argument --batch-size: expected an integer in [1, 4096], got 10000000"),
     (["--synthetic-kwargs", '{"image_size": 1000000000}'], "'image_size' must be an integer in [16, 4096], got 1000000000"),
     (["--real-kwargs", '{"image_size": "big"}'], "'image_size' must be an integer in [16, 4096], got \"big\""),
     (["--synthetic-kwargs", "[1]"], "argument --synthetic-kwargs: expected a JSON object, got [1]")],
)  # fmt: skip
def test_silnet_sizes_are_bounded(args, expected, tripwire, capsys, tmp_path):
    line = refused(silnet_cli.main, ["--out", str(tmp_path / "s"), *args], capsys)
    assert line.startswith("handaug-train-silnet: error: ") and expected in line, line


def test_silnet_widest_layer_is_bounded(tripwire, capsys, tmp_path):
    """Each of --base-channels 256 and --depth 8 is allowed; together they ask for 65536-channel layers."""
    line = refused(silnet_cli.main, ["--out", str(tmp_path / "s"), "--base-channels", "256", "--depth", "8"], capsys)
    assert "base_channels x 2^depth, the widest layer, must be at most 2048: got 256 x 2^8 = 65536" in line, line


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["fid", "--image-size", "60000"], "argument --image-size: expected an integer in [16, 4096], got 60000"),
     (["fid", "--protocol", "hgan", "--crop-size", "100000"], "argument --crop-size: expected an integer in [16, 4096], got 100000"),
     (["fid", "--protocol", "hgan", "--crop-size", "1"], "argument --crop-size: expected an integer in [16, 4096], got 1"),
     (["grid", "--batch-size", "0"], "argument --batch-size: expected an integer in [1, 4096], got 0")],
)  # fmt: skip
def test_eval_sizes_are_bounded(args, expected, tripwire, capsys, tmp_path):
    line = refused(eval_cli.main, [*args, "--ckpt", str(tmp_path / "c"), "--out", str(tmp_path / "o")], capsys)
    assert expected in line, line


def test_sizes_within_the_bounds_still_parse():
    args = silnet_cli.build_parser().parse_args(["--out", "x", "--depth", "8", "--base-channels", "4", "--crop-size", "16",
                                                 "--synthetic-kwargs", '{"image_size": 4096, "length": 10}'])  # fmt: skip
    assert (args.depth, args.base_channels, args.crop_size, args.synthetic_kwargs["image_size"]) == (8, 4, 16, 4096)
    args = eval_cli.build_parser().parse_args(["fid", "--ckpt", "c", "--protocol", "hgan", "--crop-size", "4096"])
    assert args.crop_size == 4096


# ----------------------------------------------------------------------------- 11. hyperparameters, non-finite weights
@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--momentum", "1e308"], "argument --momentum: expected a number in [0, 1), got 1e308"),
     (["--momentum", "1"], "argument --momentum: expected a number in [0, 1), got 1"),
     (["--lr", "nan"], "argument --lr: expected a number in (0, 10], got nan"),
     (["--lr", "0"], "argument --lr: expected a number in (0, 10], got 0"),
     (["--weight-decay", "-1"], "argument --weight-decay: expected a number in [0, 1], got -1"),
     (["--clip-norm", "inf"], "argument --clip-norm: expected a number in (0, 1e+06], got inf")],
)  # fmt: skip
def test_silnet_hyperparameters_are_bounded(args, expected, tripwire, capsys, tmp_path):
    line = refused(silnet_cli.main, ["--out", str(tmp_path / "s"), *args], capsys)
    assert expected in line, line


def test_the_api_refuses_the_same_hyperparameters():
    from handaug.silnet.pretraining import SilNetPretraining

    for name, value, interval in (("momentum", 1e308, "[0, 1)"), ("lr", 11.0, "(0, 10]"), ("weight_decay", True, "[0, 1]")):
        with pytest.raises(ValueError) as err:
            SilNetPretraining(**{name: value}).check()
        assert f"{name} must be a number in {interval}, got {value!r}" in str(err.value)


def test_non_finite_silnet_weights_are_never_saved(tmp_path):
    import torch

    from handaug.networks.silnet import SilNet
    from handaug.silnet.checkpoint import save_silnet

    net = SilNet(base_channels=4, depth=2)
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")
    name = next(n for n, _ in net.named_parameters())
    with pytest.raises(ValueError, match=rf"SilNet tensor '{name}' has \d+ NaN or infinite values .*nothing was written"):
        save_silnet(net, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_diverging_pretraining_stops_with_one_line_and_saves_nothing(tmp_path, monkeypatch, capsys):
    """Before: `--momentum 1e308` reported success and saved 66 of 76 tensors non-finite. A loss that becomes
    NaN or infinite (whatever the cause) now stops the run with one line, and no non-finite weights are kept."""
    import torch

    import handaug.silnet.pretraining as pretraining

    real = pretraining._segmentation_loss
    calls = []

    def diverging(*args, **kwargs):  # the second training step's loss is infinite
        loss = real(*args, **kwargs)
        if not torch.is_grad_enabled():
            return loss  # validation
        calls.append(1)
        return loss * float("inf") if len(calls) >= 2 else loss

    monkeypatch.setattr(pretraining, "_segmentation_loss", diverging)
    argv = ["--out", str(tmp_path / "s"), "--base-channels", "4", "--crop-size", "32", "--val-size", "32", "--val-count", "2",
            "--batch-size", "2", "--max-steps", "3", "--val-every", "1",
            "--synthetic-kwargs", '{"image_size": 48, "length": 8}', "--real-kwargs", '{"image_size": 48, "length": 8}']  # fmt: skip
    line = refused(silnet_cli.main, argv, capsys)
    assert line.startswith("handaug-train-silnet: error: SilNet pretraining diverged at step 2: the training loss is inf"), line
    if (tmp_path / "s").exists():  # what was kept (step 1's weights) is finite and loads
        from handaug.silnet.checkpoint import load_silnet

        assert all(torch.isfinite(t).all() for t in load_silnet(tmp_path / "s").state_dict().values())


# ----------------------------------------------------------------------------- 15. small messages
@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--seed", str(2**70)], f"argument --seed: expected an integer in [0, 4294967295], got {2**70}"),
     (["--seed", "-1"], "argument --seed: expected an integer in [0, 4294967295], got -1"),
     (["--device", "meta"], "argument --device: meta holds no data, so nothing can be computed there; use cpu or cuda"),
     (["--device", "cuda:7"], "argument --device: cuda:7 is not available: this process sees"),
     (["--device", "banana"], "argument --device: expected a torch device such as cpu, cuda or cuda:0, got banana")],
)  # fmt: skip
def test_silnet_seed_and_device_are_one_usage_line(args, expected, tripwire, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    line = refused(silnet_cli.main, ["--out", str(tmp_path / "s"), *args], capsys)
    assert expected in line, line


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--threads", "100000"], "argument --threads: expected an integer in [1, 1024], got 100000"),
     (["--seed", str(2**70)], "argument --seed: expected an integer in [0, 4294967295]"),
     (["--device", "meta"], "argument --device: meta holds no data, so nothing can be computed there; use cpu or cuda"),
     (["--out", "/dev/null"], "argument --out: '/dev/null' exists and is not a folder")],
)  # fmt: skip
def test_eval_threads_seed_device_and_out_are_one_usage_line(args, expected, tripwire, capsys, tmp_path):
    line = refused(eval_cli.main, ["grid", "--ckpt", str(tmp_path), *args], capsys)
    assert line.startswith("handaug-eval") and expected in line, line


def test_a_newline_in_an_eval_label_is_refused_and_never_reaches_the_report(tripwire, capsys, tmp_path):
    """Before: `--ckpt $'best\\n# Pwned=PATH'` wrote a heading into report.md."""
    line = refused(eval_cli.main, ["grid", "--ckpt", f"best\n# Pwned={tmp_path}", "--out", str(tmp_path / "o")], capsys)
    assert "the label must be one line of printable text" in line and "'best\\n# Pwned'" in line, line


def test_report_lines_quote_labels_and_paths_on_one_line(tmp_path):
    from handaug.metrics.suite import _code, checkpoint_label

    folder = tmp_path / "run\n# heading"
    assert checkpoint_label(folder / "export") == "run\\n# heading/export"
    assert _code("a`b\nc") == "`` a`b\\nc ``" and _code("plain") == "`plain`"
