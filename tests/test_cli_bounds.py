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
    import handaug.metrics.suite as suite
    import handaug.plugins.silnet_pretraining as pretraining

    def reached(*args, **kwargs):
        pytest.fail("a refused value reached training or evaluation")

    monkeypatch.setattr(pretraining, "pretrain_silnet", reached)
    monkeypatch.setattr(suite, "EvalSuite", reached)
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
