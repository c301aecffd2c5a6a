"""Registry by name: creation, recorded specs, unknown names, duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from handaug.registry import (
    ArgumentOutOfBounds,
    PluginError,
    Registry,
    create_dataset,
    create_generator,
    get_registry,
    network_spec,
)


def test_builtin_names_are_registered_by_their_plugins():
    assert {"resnet"} <= set(get_registry("generator"))
    assert {"patch", "pixel", "perceptual"} <= set(get_registry("discriminator"))
    assert {"folder", "procedural"} <= set(get_registry("dataset"))
    entry = get_registry("discriminator").get("perceptual")
    assert entry.plugin == "handaug.plugins.perceptual"
    assert entry.distribution == "handaug"


def test_created_networks_remember_name_and_kwargs():
    g = create_generator("resnet", n_blocks=1, ngf=4)
    spec = network_spec(g)
    assert (spec.kind, spec.name, spec.kwargs) == ("generator", "resnet", {"n_blocks": 1, "ngf": 4})


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(PluginError, match=r"unknown generator name 'resnett'.*resnet.*Did you mean 'resnet'"):
        create_generator("resnett")


def test_registering_a_name_twice_names_both_plugins():
    registry = Registry("generator")
    with registry.providing("first_plugin", "dist-a", "1.0"):
        registry.add("net", dict)
    with registry.providing("second_plugin", "dist-b", "2.0"), pytest.raises(
        PluginError, match=r"first_plugin \(dist-a 1.0\).*second_plugin \(dist-b 2.0\)"
    ):
        registry.add("net", dict)
    assert registry.get("net").plugin == "first_plugin"


def test_bad_names_and_factories():
    registry = Registry("loss")
    with pytest.raises(PluginError, match="name"):
        registry.add("a:b", dict)
    with pytest.raises(PluginError, match="callable"):
        registry.add("x", 42)
    with pytest.raises(ValueError, match="kind"):
        Registry("optimizer")


def test_procedural_takes_no_root():
    with pytest.raises(ValueError, match="root"):
        create_dataset("procedural", root="/data")


# ----------------------------------------------------------------------------- argument bounds
def test_bounds_are_checked_before_the_factory_runs():
    registry = get_registry("generator")
    with pytest.raises(ArgumentOutOfBounds, match=r"generator 'resnet' takes ngf as an integer in \[1, 1024\], got 2000") as err:
        registry.check_arguments("resnet", {"ngf": 2000})
    assert err.value.argument == "ngf"
    with pytest.raises(ValueError, match=r"n_blocks as an integer in \[0, 64\], got 65"):
        create_generator("resnet", n_blocks=65, ngf=1)
    for bad in (True, 8.0, "8", None):
        with pytest.raises(ValueError, match="ngf as an integer"):
            create_generator("resnet", n_blocks=0, ngf=bad)
    with pytest.raises(ValueError, match=r"dropout as a number in \[0.0, 1.0\], got nan"):
        registry.check_arguments("resnet", {"dropout": float("nan")})
    # the one rule (handaug.arguments): numpy scalars are numbers, numpy bools are not
    registry.check_arguments("resnet", {"ngf": np.int64(8), "n_blocks": np.uint8(2), "dropout": np.float32(0.5)})
    for bad in ({"ngf": np.bool_(True)}, {"dropout": np.float32("nan")}, {"dropout": np.bool_(False)}):
        with pytest.raises(ArgumentOutOfBounds, match=r"generator 'resnet' takes \w+ as an? (integer|number) in"):
            registry.check_arguments("resnet", bad)


def test_every_builtin_network_declares_bounds():
    for kind, name in [("generator", "resnet"), ("discriminator", "patch"), ("discriminator", "pixel"),
                       ("discriminator", "perceptual"), ("loss", "geoconsistency")]:
        assert get_registry(kind).get(name).bounds, (kind, name)
    with pytest.raises(ValueError, match=r"output_strides as a list of integers in \[2, 256\], got \[8, 1024\]"):
        get_registry("discriminator").check_arguments("perceptual", {"output_strides": [8, 1024]})
    with pytest.raises(ValueError, match=r"n_layers as an integer in \[1, 8\]"):
        get_registry("discriminator").check_arguments("patch", {"n_layers": 30})


def test_unknown_arguments_are_refused_without_calling_the_factory():
    calls = []

    def factory(width: int = 1):
        calls.append(width)
        return width

    registry = Registry("loss")
    registry.add("w", factory, bounds={"width": (1, 4)})
    with pytest.raises(TypeError, match=r"loss 'w' from <direct> rejected its arguments \['depth'\]"):
        registry.check_arguments("w", {"depth": 3})
    assert registry.create("w", width=4) == 4 and calls == [4]
    with pytest.raises(ValueError, match="width"):
        registry.create("w", width=5)
    assert calls == [4]


def test_malformed_bounds_are_a_plugin_error():
    registry = Registry("generator")
    for bounds in ({"ngf": (10, 1)}, {"ngf": 5}, {"ngf": (1, float("inf"))}, {3: (1, 2)}):
        with pytest.raises(PluginError, match="bounds"):
            registry.add("net", dict, bounds=bounds)


def test_plugin_attribution_removal_and_broken_plugin_notes():
    registry = Registry("loss")
    with registry.providing("p", "dist-p", "0.1"):
        registry.add("a", dict)
    registry.add("b", dict)
    assert (registry.get("a").provider, registry.get("b").plugin) == ("p (dist-p 0.1)", "<direct>")
    registry.remove_plugin("p")
    assert registry.names() == ["b"]
    registry.note_broken_plugin("'q' from distribution q-dist 2.0: ImportError: nope")
    with pytest.raises(PluginError, match=r"unknown loss name 'a'.*failed to load and may provide it: 'q' from distribution q-dist"):
        registry.get("a")
