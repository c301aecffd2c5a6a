"""Third-party plugins: discovery through entry points, the CLI listing, training and loading with them,
and the failure cases (duplicate names, unknown names, broken plugins, autoload disabled)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import handaug
from handaug.cli.train import main as train_main
from handaug.plugin_manager import broken_plugins, get_plugin_manager, plugin_table, reset_plugins
from handaug.registry import PluginError, create_generator, get_registry

PLUGIN_CODE = '''
import torch
import torch.nn as nn
from handaug.hookspecs import hookimpl


class TinyUNetGenerator(nn.Module):
    """A two-level conv generator: (B, 3, H, W) in [-1, 1] -> same; H, W multiples of 2."""

    stride = 2

    def __init__(self, width: int = 8):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU())
        self.out = nn.Conv2d(width + 3, 3, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.out(torch.cat([self.up(self.down(x)), x], dim=1)))


@hookimpl
def handaug_register_generators(registry):
    registry.add("{name}", TinyUNetGenerator)
'''


def make_distribution(root: Path, dist: str, module: str, code: str, version: str = "0.3.0") -> Path:
    """A minimal installed distribution: a package plus a dist-info folder with its entry point."""
    package = root / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[handaug]\n{module} = {module}\n")
    return root


@pytest.fixture
def acme(tmp_path, monkeypatch):
    root = make_distribution(tmp_path / "site", "acme-handaug", "acme_handaug", PLUGIN_CODE.format(name="acme_unet"))
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()
    return root


def env_with(path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return env


def test_entry_point_plugin_is_registered_with_its_distribution(acme):
    entry = get_registry("generator").get("acme_unet")
    assert (entry.plugin, entry.distribution, entry.version) == ("acme_handaug", "acme-handaug", "0.3.0")
    assert {"kind": "generator", "name": "acme_unet", "plugin": "acme_handaug", "distribution": "acme-handaug",
            "version": "0.3.0"} in plugin_table()
    # handaug's own plugins come first, through the same hooks.
    names = [name for name, _ in get_plugin_manager().list_name_plugin()]
    assert names.index("handaug.plugins.resnet") < names.index("acme_handaug")


def test_handaug_plugins_command_lists_the_plugin(acme, tmp_path):
    out = subprocess.run([sys.executable, "-m", "handaug.cli.main", "plugins"], env=env_with(acme),
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if "acme_unet" in line)
    assert line.split() == ["generator", "acme_unet", "acme_handaug", "acme-handaug", "0.3.0"]


@pytest.mark.slow
def test_train_with_the_plugin_generator_then_load_it_through_synth_to_real(acme, tmp_path):
    args = ["-m", "handaug.cli.train", "--demo", "--trainer.default_root_dir", "run",
            "--model.generator", "acme_unet", "--model.generator_kwargs", '{"width": 6}',
            "--model.discriminator", "pixel", "--model.discriminator_kwargs", '{"ndf": 8}',
            "--data.synthetic_kwargs", '{"image_size": 32, "length": 20}', "--data.real_kwargs", '{"image_size": 32, "length": 20}',
            "--data.crop_size", "32", "--data.val_size", "32", "--data.val_count", "2",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    proc = subprocess.run([sys.executable, *args], env=env_with(acme), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = tmp_path / "run" / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["network"]["name"] == "acme_unet" and config["network"]["distribution"] == "acme-handaug"
    assert config["stride"] == 2
    s2r = handaug.SynthToReal(export, precision="fp32")
    images = torch.randint(0, 256, (2, 3, 31, 45), dtype=torch.uint8)  # odd sizes: padded to stride 2 inside
    out = s2r(images)
    assert out.shape == images.shape and not torch.equal(out, images)

    # Without the plugin installed, loading says which distribution to install (its name only, quoted).
    sys.path.remove(str(acme))
    sys.modules.pop("acme_handaug", None)
    reset_plugins()
    with pytest.raises(PluginError, match=r"'acme_unet'.*distribution 'acme-handaug'"):
        handaug.SynthToReal(export)


def test_duplicate_name_names_both_plugins(tmp_path, monkeypatch):
    root = make_distribution(tmp_path / "site", "resnet-clash", "resnet_clash", PLUGIN_CODE.format(name="resnet"))
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()
    with pytest.raises(PluginError, match=r"generator 'resnet' is registered twice: by handaug.plugins.resnet \(handaug .*\) and by resnet_clash \(resnet-clash 0.3.0\)"):
        get_registry("generator")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(PluginError, match=r"unknown generator name 'unet'; registered generators: resnet"):
        create_generator("unet")


def test_broken_plugin_is_reported_and_does_not_break_the_others(acme, tmp_path, monkeypatch):
    broken_root = make_distribution(tmp_path / "broken_site", "handaug-broken", "broken_plugin",
                                    "import not_a_real_module_xyz\n", version="1.2.0")
    monkeypatch.syspath_prepend(str(broken_root))
    reset_plugins()
    with pytest.warns(RuntimeWarning, match=r"'broken_plugin' from distribution handaug-broken 1.2.0.*not_a_real_module_xyz"):
        generators = get_registry("generator")
    assert {"resnet", "acme_unet"} <= set(generators)
    assert [b.distribution for b in broken_plugins()] == ["handaug-broken"]
    with pytest.raises(PluginError, match=r"failed to load and may provide it: 'broken_plugin' from distribution handaug-broken"):
        create_generator("broken_unet")
    out = subprocess.run([sys.executable, "-m", "handaug.cli.main", "plugins"], env=env_with(broken_root),
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "FAILED TO LOAD: 'broken_plugin' from distribution handaug-broken" in out.stderr


def test_hook_raising_during_registration_is_reported(tmp_path, monkeypatch):
    code = "from handaug.hookspecs import hookimpl\n\n@hookimpl\ndef handaug_register_losses(registry):\n    raise RuntimeError('boom')\n"
    root = make_distribution(tmp_path / "site", "handaug-boom", "boom_plugin", code)
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()
    with pytest.warns(RuntimeWarning, match="boom_plugin.*boom"):
        assert "geoconsistency" in get_registry("loss")


def test_misspelt_hook_is_an_error(tmp_path, monkeypatch):
    code = "from handaug.hookspecs import hookimpl\n\n@hookimpl\ndef handaug_register_generator(registry):\n    pass\n"
    root = make_distribution(tmp_path / "site", "handaug-typo", "typo_plugin", code)
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()
    with pytest.raises(Exception, match="handaug_register_generator"):
        get_registry("generator")


def test_autoload_can_be_disabled_and_plugins_named_explicitly(acme, monkeypatch):
    monkeypatch.setenv("HANDAUG_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    assert "acme_unet" not in get_registry("generator") and "resnet" in get_registry("generator")
    monkeypatch.setenv("HANDAUG_PLUGINS", "acme_handaug")
    reset_plugins()
    assert get_registry("generator").get("acme_unet").plugin == "acme_handaug"


CONFIGS = sorted((Path(__file__).parent.parent / "examples" / "configs").glob("*.yaml"))


def test_there_is_a_config_for_every_row_of_table_1():
    assert {c.stem for c in CONFIGS} == {"pixcyclegan4", "pixcyclegan6", "geocongan", "msh-gan4", "msh-gan6"}


@pytest.fixture(scope="module")
def reader_fixtures(tmp_path_factory):
    """Small SynthHands and RealHands folders: the presets name these readers, not the procedural hands."""
    from test_readers import make_realhands, make_synthhands

    root = tmp_path_factory.mktemp("datasets")
    make_synthhands(root / "SynthHands", n=12, size=64)
    make_realhands(root / "RealHands", n=12, size=64, extra_bad=False)
    return f"synthhands:{root / 'SynthHands'}", f"realhands:{root / 'RealHands'}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_table_1_config_trains_a_few_steps(config, tmp_path, monkeypatch, reader_fixtures):
    monkeypatch.chdir(tmp_path)
    model = yaml.safe_load(config.read_text())["model"]
    generator_kwargs = {**model["generator_kwargs"], "ngf": 8}  # the paper's depth, a narrow width
    discriminator_kwargs = {**model["discriminator_kwargs"], "ndf": 8}
    if model["discriminator"] == "perceptual":
        discriminator_kwargs["vgg_weights"] = "random"  # no ImageNet weights in tests
    synth, real = reader_fixtures
    split = {"test_size": 2, "val_size": 2}
    args = ["--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.precision", "32-true",
            "--trainer.accelerator", "cpu", "--trainer.max_steps", "4", "--trainer.limit_val_batches", "0",
            "--trainer.enable_progress_bar", "false",
            "--model.generator_kwargs", json.dumps(generator_kwargs),
            "--model.discriminator_kwargs", json.dumps(discriminator_kwargs),
            "--data.synthetic", synth, "--data.real", real,
            "--data.synthetic_kwargs", json.dumps({"noobject_only": True, "mask_tolerance": 0, "split": "train", **split}),
            "--data.synthetic_val_kwargs", json.dumps({"split": "val", **split}),
            "--data.real_kwargs", json.dumps({"split": "train", **split}),
            "--data.real_val_kwargs", json.dumps({"split": "val", **split}),
            "--data.crop_size", "32", "--data.val_size", "32", "--data.val_count", "2", "--data.num_workers", "0",
            "--data.batch_size", "2", "--data.val_batch_size", "2", "--selection.features", "random_conv"]
    if model.get("extra_losses"):  # SilNet trained jointly here: the preset's frozen runs/silnet does not exist
        args += ["--model.extra_loss_kwargs", '{"geoconsistency": {"base_channels": 4, "depth": 2}}']
    train_main(args)
    ckpt = handaug.read_checkpoint(tmp_path / "run" / "export")
    assert ckpt.config["network"]["kwargs"]["n_blocks"] == model["generator_kwargs"]["n_blocks"]
    assert ckpt.config["training"]["model"]["discriminator"] == model["discriminator"]
    assert ckpt.config["training"]["batches"] == 2  # max_steps counts optimizer steps: 2 per batch
