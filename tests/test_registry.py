"""Registry by name: creation, recorded specs, unknown names, duplicates."""

from __future__ import annotations

import pytest

from handaug.registry import PluginError, Registry, create_dataset, create_generator, get_registry, network_spec


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
    registry._current = ("first_plugin", "dist-a", "1.0")
    registry.add("net", dict)
    registry._current = ("second_plugin", "dist-b", "2.0")
    with pytest.raises(PluginError, match=r"first_plugin \(dist-a 1.0\).*second_plugin \(dist-b 2.0\)"):
        registry.add("net", dict)


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
