"""Checkpoints by Hugging Face Hub name (hf://ORG/REPO[@REVISION][/SUBFOLDER]), offline.

No test reaches the network: each builds a Hub cache in a temporary folder with the layout
huggingface_hub itself uses (``models--ORG--REPO/{blobs,snapshots/<commit>,refs/<branch>}``) and
points the real library at it; names are resolved by huggingface_hub's own ``hf_hub_download``
offline (``HANDAUG_OFFLINE``, set by conftest, asks for ``local_files_only``; the subprocess tests
use ``HF_HUB_OFFLINE=1`` instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import handaug
from handaug import load_generator, read_checkpoint, save_generator
from handaug.hub import HubCheckpoint, fetch_checkpoint, parse_hub_name
from handaug.registry import create_generator

huggingface_hub = pytest.importorskip("huggingface_hub", reason="the hub extra (pip install 'handaug[hub]')")
hub_constants = pytest.importorskip("huggingface_hub.constants")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
BIN = Path(sys.executable).parent


def make_checkpoint(path, seed=0, **kwargs):
    torch.manual_seed(seed)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), path, background=1.0, trained_with_masks=True,
                          **kwargs)  # fmt: skip


def add_to_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str = COMMIT, refs: tuple[str, ...] = ("main",)):
    """Put ``files`` (path in the repository → local file) into a Hub cache as huggingface_hub lays it
    out: content-addressed blobs, a snapshot of symbolic links per commit, and refs naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for name, source in files.items():
        data = Path(source).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def checkpoint_files(ckpt_dir: Path, prefix: str = "") -> dict[str, Path]:
    return {prefix + name: ckpt_dir / name for name in ("config.json", "generator.safetensors")}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache that huggingface_hub uses for this test (its cache setting, read at each call)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def published(tmp_path, hub_cache):
    """``acme/hands``: a checkpoint at the root on main (tag v1 too), another in a subfolder, and a
    single-file checkpoint; commit OTHER_COMMIT (branch ``dev``) holds a different generator."""
    root = make_checkpoint(tmp_path / "root", seed=0)
    sub = make_checkpoint(tmp_path / "sub", seed=1)
    single = make_checkpoint(tmp_path / "single.safetensors", seed=2)
    files = {**checkpoint_files(root), **checkpoint_files(sub, "models/small/"), "files/g.safetensors": single}
    add_to_cache(hub_cache, "acme/hands", files, refs=("main", "v1"))
    dev = make_checkpoint(tmp_path / "dev", seed=3)
    add_to_cache(hub_cache, "acme/hands", checkpoint_files(dev), commit=OTHER_COMMIT, refs=("dev",))
    return {"root": root, "sub": sub, "single": single, "dev": dev}


def images(n=2, size=32):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hf://acme/hands", HubCheckpoint("acme/hands", None, "")),
        ("hf://acme/hands@v1", HubCheckpoint("acme/hands", "v1", "")),
        ("hf://acme/hands@refs%2Fpr%2F3/models/small", HubCheckpoint("acme/hands", "refs/pr/3", "models/small")),
        ("hf://acme/hands/files/g.safetensors", HubCheckpoint("acme/hands", None, "files/g.safetensors")),
    ],
)
def test_names_parse_and_print_back(name, expected):
    assert parse_hub_name(name) == expected
    assert expected.name == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hf://acme", "names no repository"),
        ("hf://acme/", "repository '' is not a valid Hub name"),
        ("hf://ac me/hands", "organisation 'ac me' is not a valid Hub name"),
        ("hf://acme/hands@", "empty revision"),
        ("hf://acme/hands/../x", "has an empty, '.' or '..' part"),
        ("hf://acme/hands//x", "has an empty, '.' or '..' part"),
    ],
)
def test_malformed_names_are_refused_by_name(name, message):
    with pytest.raises(ValueError, match=message):
        parse_hub_name(name)
    with pytest.raises(ValueError, match=message):
        handaug.SynthToReal(name)


# ----------------------------------------------------------------------------- revisions by git's ref-name rules
@pytest.mark.parametrize(
    ("revision", "problem"),
    [("..%2F..%2F..%2Fsecret", "holds '..'"), ("%2Fetc%2Fpasswd", "starts or ends with '/'"),
     ("a..b", "holds '..'"), ("v1%2F", "starts or ends with '/'"), ("a%2F%2Fb", "holds '//'"),
     ("v1.", "ends with '.'"), ("refs%2F.hidden", "part '.hidden' starts with '.'"),
     ("main.lock", "part 'main.lock' ends with '.lock'"), ("main@%7B1%7D", "holds '@{'"), ("%40", "single character '@'"),
     ("a%5Cb", r"holds '\\'"), ("a%00b", r"holds '\x00'"), ("a%0Ab", r"holds '\n'"), ("a%7Fb", r"holds '\x7f'"),
     ("a%20b", "holds ' '"), ("a~1", "holds '~'"), ("a%5E", "holds '^'"), ("a:b", "holds ':'"),
     ("a%3Fb", "holds '?'"), ("a*", "holds '*'"), ("a%5Bb", "holds '['"), ("%FF", "not UTF-8")],
)  # fmt: skip
def test_revisions_that_are_not_git_ref_names_are_refused_by_name(revision, problem):
    """A percent-decoded revision reaches huggingface_hub as the cache file refs/<revision>: '..' or a
    leading '/' would read (offline) or write (online) a file outside the cache."""
    name = f"hf://acme/hands@{revision}"
    with pytest.raises(ValueError) as err:
        parse_hub_name(name)
    message = str(err.value)
    assert message.startswith(f"checkpoint {name!r}: ") and problem in message and "\n" not in message, message


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs%2Fpr%2F3", COMMIT, "feature%2Fhand-crop_2", "a@b"])
def test_ordinary_revisions_still_parse(revision):
    assert parse_hub_name(f"hf://acme/hands@{revision}").revision == revision.replace("%2F", "/")


@pytest.mark.parametrize(
    ("name", "message"),
    [("hf://acme/a..b", "repository 'a..b' is not a valid Hub name"), ("hf://ac--me/hands", "organisation 'ac--me'"),
     ("hf://acme/hands.", "repository 'hands.' is not a valid Hub name"),
     ("hf://acme/hands/models\\small", "subfolder 'models\\\\\\\\small' holds"),
     ("hf://acme/hands/a\tb", "subfolder 'a\\\\tb' holds")],
)  # fmt: skip
def test_repository_and_subfolder_names_are_checked_too(name, message):
    with pytest.raises(ValueError, match=message):
        parse_hub_name(name)


def test_a_revision_naming_a_local_file_is_never_read(tmp_path, published):
    """Before: huggingface_hub read refs/<revision> offline, so '/abs/path' or '../../..' loaded any local
    file as a commit name (and echoed its first line in the error). Now the name is refused before."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    absolute = str(secret).replace("/", "%2F")
    relative = "..%2F" * 8 + str(secret).lstrip("/").replace("/", "%2F")
    for revision in (absolute, relative):
        for attempt in (read_checkpoint, load_generator, handaug.SynthToReal, fetch_checkpoint):
            with pytest.raises(ValueError, match="is not a valid git ref name") as err:
                attempt(f"hf://acme/hands@{revision}")
            assert "TOP-SECRET-CONTENT" not in str(err.value)


# ----------------------------------------------------------------------------- resolution, offline from the cache
def test_synth_to_real_from_the_hub_equals_the_local_checkpoint(published):
    x = images()
    hub = handaug.SynthToReal("hf://acme/hands", precision="fp32")
    assert hub.ckpt_paths == ["hf://acme/hands"]
    assert torch.equal(hub(x), handaug.SynthToReal(published["root"], precision="fp32")(x))
    restored = pickle.loads(pickle.dumps(hub))  # DataLoader workers get the name, not the weights
    assert restored.ckpt_paths == ["hf://acme/hands"] and torch.equal(restored(x), hub(x))


@pytest.mark.parametrize(
    ("name", "which"),
    [("hf://acme/hands@v1", "root"), ("hf://acme/hands@dev", "dev"), (f"hf://acme/hands@{OTHER_COMMIT}", "dev"),
     ("hf://acme/hands/models/small", "sub"), ("hf://acme/hands@main/files/g.safetensors", "single")],
)  # fmt: skip
def test_revisions_subfolders_and_single_files(published, name, which):
    x = images()
    expected = load_generator(published[which])(x.float() / 127.5 - 1)
    assert torch.equal(load_generator(name)(x.float() / 127.5 - 1), expected)
    checkpoint = read_checkpoint(name)
    assert COMMIT in checkpoint.path.parts or OTHER_COMMIT in checkpoint.path.parts  # inside the cache's snapshot


def test_a_pool_mixing_hub_names_and_local_paths(published):
    s2r = handaug.SynthToReal(["hf://acme/hands", published["dev"]], precision="fp32", seed=0)
    assert s2r(images(4)).shape == (4, 3, 32, 32)


def test_cached_files_are_verified_like_local_ones(tmp_path, hub_cache):
    good = make_checkpoint(tmp_path / "good")
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray((good / "generator.safetensors").read_bytes())
    data[-8:] = b"\x00\x00\xc0\x7f" * 2  # the last weights become NaN: the recorded SHA-256 no longer matches
    tampered.write_bytes(bytes(data))
    add_to_cache(hub_cache, "acme/tampered", {"config.json": good / "config.json", "generator.safetensors": tampered})
    with pytest.raises(ValueError, match="does not match the SHA-256 recorded in config.json"):
        handaug.SynthToReal("hf://acme/tampered")


def test_only_safetensors_and_json_are_fetched_never_a_pickle(tmp_path, hub_cache):
    pickled = tmp_path / "pytorch_model.bin"
    torch.save(create_generator("resnet", n_blocks=1, ngf=8).state_dict(), pickled)
    add_to_cache(hub_cache, "acme/pickled", {"pytorch_model.bin": pickled})
    with pytest.raises(FileNotFoundError, match="'config.json' of 'acme/pickled'.* was not found in the Hub cache"):
        load_generator("hf://acme/pickled")


@pytest.mark.parametrize(
    ("name", "missing"),
    [("hf://acme/unknown", "'config.json' of 'acme/unknown' \\(revision default\\)"),
     ("hf://acme/hands@nope", "'config.json' of 'acme/hands' \\(revision nope\\)"),
     ("hf://acme/hands/models/large", "'models/large/config.json' of 'acme/hands' \\(revision default\\)")],
)  # fmt: skip
def test_what_is_not_cached_offline_is_a_clear_file_not_found(published, name, missing):
    with pytest.raises(FileNotFoundError, match=f"checkpoint '{name}': {missing} was not found in the Hub cache"):
        read_checkpoint(name)


def test_albumentations_pipelines_serialise_the_hub_name(published):
    import albumentations as A

    from handaug.integrations.albumentations import SynthToReal

    pipeline = A.Compose([SynthToReal("hf://acme/hands@v1", precision="fp32")])
    entry = A.to_dict(pipeline)["transform"]["transforms"][0]
    assert entry["ckpt"] == "hf://acme/hands@v1"
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    restored = A.from_dict(json.loads(json.dumps(A.to_dict(pipeline))))
    assert np.array_equal(restored(image=image)["image"], pipeline(image=image)["image"])


def test_without_huggingface_hub_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'handaug\[hub\]'"):
        fetch_checkpoint("hf://acme/hands")


# ----------------------------------------------------------------------------- handaug-export --format hub
TRAINING = {
    "epochs_completed": 4, "optimizer_steps": 480, "precision": "bf16-mixed",
    "model": {"generator": "resnet", "discriminator": "perceptual", "lr": 0.0002, "lambda_cycle": 10.0},
    "data": {"crop_size": 48, "synthetic": {"name": "procedural"}},
    "final_metrics": {"loss_G": 1.25, "loss_D": 0.5},
}  # fmt: skip


def run_cli(name, *args, env=None, timeout=300):
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})})  # fmt: skip


def test_export_hub_folder_uploads_as_a_loadable_repository(tmp_path, hub_cache):
    ckpt = make_checkpoint(tmp_path / "run.safetensors", training=TRAINING, image_size={"train": 48, "val": 64})
    result = run_cli("handaug-export", ckpt, "--format", "hub", tmp_path / "upload", "--license", "mit",
                     "--repo-id", "acme/demo")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = tmp_path / "upload"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "generator.safetensors"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "handaug" and front["license"] == "mit" and "handaug" in front["tags"]
    assert front["handaug"]["network"] == {"name": "resnet", "kwargs": {"n_blocks": 1, "ngf": 8}}
    assert front["handaug"]["training"]["model"] == TRAINING["model"]
    assert front["handaug"]["training"]["epochs_completed"] == 4
    assert front["handaug"]["measures"] == TRAINING["final_metrics"]
    assert 'handaug.SynthToReal("hf://acme/demo"' in card and "| loss_G | 1.25 |" in card
    # what the folder holds, once on the Hub (here: in the cache), loads by name and translates as the source
    add_to_cache(hub_cache, "acme/demo", {p.name: p for p in out.iterdir()})
    x = images()
    assert torch.equal(handaug.SynthToReal("hf://acme/demo", precision="fp32")(x),
                       handaug.SynthToReal(ckpt, precision="fp32")(x))  # fmt: skip
    assert json.loads((out / "config.json").read_text())["training"] == TRAINING


def test_export_hub_refuses_a_folder_with_other_files_and_needs_a_folder(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = run_cli("handaug-export", ckpt, "--format", "hub", "--out", tmp_path / "busy")
    assert refused.returncode == 2 and "holds other files (notes.txt)" in refused.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine" and len(list((tmp_path / "busy").iterdir())) == 1
    missing = run_cli("handaug-export", ckpt, "--format", "hub")
    assert missing.returncode == 2 and "--format hub needs the folder to write" in missing.stderr
    bad = run_cli("handaug-export", ckpt, "--format", "hub", tmp_path / "x", "--license", "MIT License")
    assert bad.returncode == 2 and "license must be a license identifier" in bad.stderr


def test_model_card_escapes_what_the_config_says():
    config = {"direction": "synthetic_to_real", "network": {"name": "resnet", "kwargs": {}},
              "training": {"note": "a | b\n---\n\x1b[2J", "final_metrics": {}}}  # fmt: skip
    from handaug.export import model_card

    card = model_card(config)
    front = yaml.safe_load(card.split("\n---\n")[0].removeprefix("---\n"))
    assert front["handaug"]["training"]["note"] == "a | b\n---\n\x1b[2J"  # round-trips through YAML quoting
    assert "| note | a \\| b\\\\n---\\\\n\\\\x1b\\[2J |" in card  # one table row, escaped
    assert "\x1b" not in card


# ----------------------------------------------------------------------------- the command lines, offline
@pytest.mark.slow
def test_handaug_translate_takes_a_hub_name_offline(tmp_path, published):
    import cv2

    source = tmp_path / "src"
    source.mkdir()
    for i in range(2):
        cv2.imwrite(str(source / f"hand{i}.png"), np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    env = {"HF_HUB_OFFLINE": "1", "HANDAUG_OFFLINE": "", "HF_HUB_CACHE": os.environ["HF_HUB_CACHE"]}
    result = run_cli("handaug-translate", "hf://acme/hands@v1", source, tmp_path / "dst", "--num-workers", "0",
                     "--accelerator", "cpu", "--precision", "fp32", "--no-progress", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "dst" / "handaug-translate.json").read_text())
    assert manifest["checkpoint_sha256"] == read_checkpoint(published["root"]).config["weights_sha256"]
    assert sorted(p.name for p in (tmp_path / "dst").glob("*.png")) == ["hand0.png", "hand1.png"]
    unknown = run_cli("handaug-translate", "hf://acme/unknown", source, tmp_path / "dst2", env=env)
    assert unknown.returncode == 2 and "'hf://acme/unknown'" in unknown.stderr and "Hub" in unknown.stderr


def _unescaped(cell: str) -> list[str]:
    """Markdown/HTML syntax characters of ``cell`` that no backslash escapes."""
    found, i = [], 0
    while i < len(cell):
        if cell[i] == "\\":
            i += 2
            continue
        if cell[i] in "<>[]!`|&":
            found.append(cell[i])
        i += 1
    return found


HOSTILE = {
    "html": '<img src="https://tracker.example/p.png" onerror="alert(1)"><script>alert(2)</script>',
    "image": "![logo](https://tracker.example/logo.png)",
    "link": "[download the real weights](https://evil.example/x)",
    "code": "`rm -rf ~`",
    "entity": "&lt;b&gt;",
    "cells": "a | b | c",
    "lines": "one\n# heading\n\n| x | y |",
    "autolink": "https://evil.example/",
    "backslash": "\\<b>",
}  # fmt: skip


def test_model_card_shows_html_and_markdown_from_the_config_literally():
    """Text from config.json (which anyone may have written) is shown, never rendered, in a card a user
    uploads under their own name: no tag, image, link, code span, entity or extra table cell."""
    from handaug.export import model_card

    config = {"direction": "synthetic_to_real", "network": {"name": "resnet", "kwargs": {}},
              "training": {**HOSTILE, "final_metrics": {"<b>loss</b>": 1.0, "[x](y)": 2.0}}}  # fmt: skip
    card = model_card(config)
    body = card.split("\n---\n", 1)[1]
    tables = body.split("## Training", 1)[1]
    rows = [line for line in tables.splitlines() if line.startswith("| ") and line not in ("| | |", "| --- | --- |")]
    assert len(rows) == len(HOSTILE) + 2  # one row each: no newline or pipe made another
    for row in rows:
        cells = row[2:-2].split(" | ")
        assert len(cells) == 2, row
        assert not any(_unescaped(cell) for cell in cells), row
    assert "https://" not in body.split("## Training", 1)[1]  # no bare URL for an autolink
    front = yaml.safe_load(card.split("\n---\n")[0].removeprefix("---\n"))
    assert front["handaug"]["training"]["html"] == HOSTILE["html"]  # the front matter keeps the exact value


@pytest.mark.parametrize("final_metrics", [[1.0, 2.0], "loss 0.5", 3.5, True])
def test_final_metrics_that_are_not_an_object_still_make_a_card(tmp_path, final_metrics):
    """Before: AttributeError, and a folder without README.md. Now the value is shown in the training table."""
    from handaug.export import export_hub_folder

    ckpt = make_checkpoint(tmp_path / "ckpt", training={"epochs_completed": 1, "final_metrics": final_metrics})
    out = export_hub_folder(ckpt, tmp_path / "hub")
    card = (out / "README.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "generator.safetensors"]
    assert "| final_metrics | " in card and "No measures were recorded" in card
    front = yaml.safe_load(card.split("\n---\n")[0].removeprefix("---\n"))
    assert front["handaug"]["training"]["final_metrics"] == final_metrics


def test_a_card_that_cannot_be_made_leaves_no_files(tmp_path, monkeypatch):
    import handaug.export.hub_folder as hub_folder

    ckpt = make_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(hub_folder, "model_card", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        hub_folder.export_hub_folder(ckpt, tmp_path / "hub")
    assert not (tmp_path / "hub").exists() or not list((tmp_path / "hub").iterdir())


# ----------------------------------------------------------------------------- issue 20, 15. offline switches
def test_hf_hub_offline_alone_says_offline_not_connection(published, monkeypatch):
    """HF_HUB_OFFLINE=1 without HANDAUG_OFFLINE: a name that is not cached used to be reported as a
    connection problem ("check your connection"); it is a cache miss while downloads are off."""
    monkeypatch.delenv("HANDAUG_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # what huggingface_hub read at import
    with pytest.raises(FileNotFoundError) as err:
        read_checkpoint("hf://acme/unknown")
    message = str(err.value)
    assert "was not found in the Hub cache, and downloads are off (HF_HUB_OFFLINE is set)" in message, message
    assert "connection" not in message.lower()
    assert read_checkpoint("hf://acme/hands").config  # what is cached still resolves


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("yes", True), ("TRUE", True), ("0", False),
                                                ("false", False), ("No", False), ("off", False), ("", False)])  # fmt: skip
def test_handaug_offline_0_means_online(monkeypatch, value, offline):
    from handaug.hub import _offline_reason
    from handaug.pretrained import offline_requested

    monkeypatch.setenv("HANDAUG_OFFLINE", value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    assert offline_requested() is offline
    assert (_offline_reason() == "HANDAUG_OFFLINE is set") is offline
