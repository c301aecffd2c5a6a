"""handaug-translate's fast paths give what the plain paths give: torchvision JPEG decoding, PNG levels, CPU chunks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handaug import SynthToReal, save_generator
from handaug.cli.translate import main
from handaug.data.procedural_folder import write_procedural_folder
from handaug.registry import create_dataset, create_generator
from handaug.translation import engine, translate_dataset
from handaug.translation.engine import MANIFEST_FILE, _collate_by_size, _PendingImages, _Translator
from handaug.translation.plan import build_plan
from handaug.translation.writer import default_writer_threads, encoding_parameters

MASKS = {"mask_pattern": "../masks/{stem}.png"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", ngf=8, n_blocks=1), tmp_path_factory.mktemp("ckpt") / "ckpt",
                          background=1.0, trained_with_masks=True)  # fmt: skip


def jpeg_dataset(root: Path, n: int = 5, size: int = 40) -> Path:
    """Procedural hands with their images as JPEGs (4:2:0, quality 90) and PNG masks; one image is 4:4:4 and grey."""
    write_procedural_folder(root, n, image_size=size)
    for i, path in enumerate(sorted((root / "images").glob("*.png"))):
        bgr = cv2.imread(str(path))
        params = [cv2.IMWRITE_JPEG_QUALITY, 90]
        if i == 1:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if i == 2:
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        cv2.imwrite(str(path.with_suffix(".jpg")), bgr, params)
        path.unlink()
    return root


def pending(root: Path, decoder: str, **reader_kwargs) -> _PendingImages:
    reader = create_dataset("folder", root=str(root), **reader_kwargs)
    plan = build_plan(reader, root, root.parent / "dst")
    return _PendingImages(reader, plan.images, 50_000_000, plan.source_roots, plan.identities, decoder)


def counting_torchvision(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = engine._torchvision_decode_jpeg
    monkeypatch.setattr(engine, "_torchvision_decode_jpeg", lambda data, device: calls.append(len(data)) or real(data, device))
    return calls


def test_jpegs_decoded_by_torchvision_in_workers_or_in_device_batches_equal_the_readers_pixels(tmp_path, monkeypatch):
    src = jpeg_dataset(tmp_path / "src")
    by_reader = pending(src, "reader", **MASKS)
    expected = [by_reader[i] for i in range(len(by_reader))]
    calls = counting_torchvision(monkeypatch)

    in_workers = pending(src, "worker", **MASKS)
    for i, item in enumerate(in_workers[i] for i in range(len(in_workers))):
        assert torch.equal(item["image"], expected[i]["image"]) and torch.equal(item["mask"], expected[i]["mask"])
    assert calls == [1] * 5  # torchvision decoded every JPEG, not the reader

    on_device = pending(src, "device", **MASKS)
    items = [on_device[i] for i in range(len(on_device))]
    assert all("image" not in item and item["jpeg"].dtype == np.uint8 for item in items)  # bytes only, decoded later
    batch = _collate_by_size(items)
    (group,) = batch["groups"]
    assert group["images"] is None and len(group["jpegs"]) == 5 and group["size"] == (40, 40)
    calls.clear()
    decoded = _Translator(None, None)._decoded(group, errors := [])
    assert calls == [5] and errors == []  # one batched call
    assert torch.equal(decoded["images"], torch.stack([e["image"] for e in expected]))
    assert torch.equal(decoded["masks"], torch.stack([e["mask"] for e in expected]))


def test_an_undecodable_jpeg_in_a_device_batch_is_listed_and_the_others_kept(tmp_path):
    src = jpeg_dataset(tmp_path / "src", n=4)
    whole = (src / "images" / "0002.jpg").read_bytes()
    (src / "images" / "0002.jpg").write_bytes(whole[: len(whole) // 2])  # its header still reads 40×40
    on_device = pending(src, "device", **MASKS)
    (group,) = _collate_by_size([on_device[i] for i in range(4)])["groups"]
    decoded = _Translator(None, None)._decoded(group, errors := [])
    assert decoded["positions"].tolist() == [0, 1, 3] and decoded["images"].shape == (3, 3, 40, 40)
    assert decoded["masks"].shape == (3, 40, 40)
    assert errors == [(2, "has a readable header but its pixels cannot be decoded")]


def test_the_jpeg_path_reads_only_the_planned_files(tmp_path):
    """The JPEG path reads the bytes itself: it must refuse what the reader refuses (links put in after planning)."""
    src = jpeg_dataset(tmp_path / "src", n=3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cv2.imwrite(str(elsewhere / "face.jpg"), np.full((40, 40, 3), 7, np.uint8))
    cv2.imwrite(str(elsewhere / "mask.png"), np.full((40, 40), 255, np.uint8))
    for decoder in ("worker", "device"):
        dataset = pending(src, decoder, **MASKS)
        try:
            (src / "images" / "0000.jpg").rename(tmp_path / "0000.jpg")
            (src / "images" / "0000.jpg").symlink_to(elsewhere / "face.jpg")
            (src / "masks" / "0001.png").rename(tmp_path / "0001.png")
            (src / "masks" / "0001.png").symlink_to(elsewhere / "mask.png")
            assert "replaced by a symbolic link" in dataset[0]["error"]
            assert dataset[1]["error"].startswith("masks/0001.png: replaced by a symbolic link")
            assert "error" not in dataset[2]
        finally:
            for name, moved in (("images/0000.jpg", "0000.jpg"), ("masks/0001.png", "0001.png")):
                (src / name).unlink(missing_ok=True)
                (tmp_path / moved).rename(src / name)


def test_a_run_over_jpegs_translates_them_as_before_and_skips_the_undecodable(tmp_path, ckpt):
    src = jpeg_dataset(tmp_path / "src", n=4)
    whole = (src / "images" / "0003.jpg").read_bytes()
    (src / "images" / "0003.jpg").write_bytes(whole[: len(whole) // 2])
    report = translate_dataset(ckpt, src, tmp_path / "dst", "folder", MASKS, num_workers=0, batch_size=4, progress=False)
    assert (report.images_translated, report.images_skipped) == (3, 1)
    assert "cannot be decoded" in report.skipped[0]["reason"] and report.skipped[0]["path"] == "images/0003.jpg"
    transform = SynthToReal(ckpt, p=1.0)
    reader = create_dataset("folder", root=str(src), **MASKS)
    for i in range(3):
        sample = reader[i]
        image = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None]
        expected = transform(image, mask=torch.from_numpy(sample["mask"] > 0)[None])[0].permute(1, 2, 0).numpy()
        written = cv2.imread(str(tmp_path / "dst" / "images" / f"{i:04d}.jpg"))[..., ::-1]
        again = cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(expected[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])[1],
                             cv2.IMREAD_COLOR)[..., ::-1]  # fmt: skip
        assert np.array_equal(written, again)


def test_the_png_level_changes_the_file_sizes_never_the_pixels(tmp_path, ckpt, capsys):
    src = tmp_path / "src"
    write_procedural_folder(src, 3, image_size=48)
    sizes, pixels = {}, {}
    for level in ("0", "9", None):
        dst = tmp_path / f"dst-{level}"
        extra = ["--png-compression", level] if level is not None else []
        code = main([str(ckpt), str(src), str(dst), "--dataset-kwargs", json.dumps(MASKS), "--num-workers", "0", "--no-progress", *extra])
        assert code == 0
        files = sorted((dst / "images").glob("*.png"))
        sizes[level] = sum(f.stat().st_size for f in files)
        pixels[level] = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
        settings = json.loads((dst / MANIFEST_FILE).read_text())["settings"]
        assert settings["png_compression"] == (None if level is None else int(level))
    assert sizes["0"] > sizes[None] > sizes["9"]  # level 0 stores, 9 compresses hardest
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(pixels["0"], pixels["9"], pixels[None]))

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(ckpt), str(src), str(tmp_path / "bad"), "--png-compression", "10"])
    assert exit_.value.code == 2 and "argument --png-compression: expected an integer from 0 to 9, got '10'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"png_compression \(--png-compression\) must be an integer in 0..9 or None, got 10"):
        translate_dataset(ckpt, src, tmp_path / "bad", png_compression=10)
    with pytest.raises(ValueError, match="writer_threads must be an integer >= 1, got 0"):
        translate_dataset(ckpt, src, tmp_path / "bad", writer_threads=0)
    # the one rule (handaug.arguments): bools are not numbers; numpy integers are (as plain ints for OpenCV)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got True$"):
        translate_dataset(ckpt, src, tmp_path / "bad", batch_size=True)
    with pytest.raises(ValueError, match=r"must be an integer in 0..9 or None, got True$"):
        translate_dataset(ckpt, src, tmp_path / "bad", png_compression=True)
    assert not (tmp_path / "bad").exists()
    parameters = encoding_parameters(".png", np.int64(3))
    assert parameters == [cv2.IMWRITE_PNG_COMPRESSION, 3] and type(parameters[1]) is int


def test_cpu_chunks_translate_exactly_as_one_call(ckpt, monkeypatch):
    torch.manual_seed(1)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    masks = torch.rand(5, 32, 32) > 0.3
    transform = SynthToReal(ckpt, p=1.0)
    whole = transform(images, mask=masks)
    monkeypatch.setattr(engine, "CPU_CHUNK_PIXELS", 2 * 32 * 32)  # chunks of 2, 2 and 1 frames
    calls = []
    counting = lambda x, mask=None: calls.append(len(x)) or transform(x, mask=mask)  # noqa: E731
    chunked = _Translator(counting, None)._translate(images, masks)
    assert calls == [2, 2, 1] and [len(c) for c in chunked] == [2, 2, 1] and torch.equal(torch.cat(chunked), whole)
    calls.clear()
    assert torch.equal(torch.cat(_Translator(counting, None)._translate(images, None)), transform(images))


def test_writer_threads_follow_the_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_writer_threads() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_writer_threads() == 2


def test_the_benchmark_measures_the_io_path_and_writes_json(tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "translate_speed.py"), "--identity", "--format", "jpg",
                           "--images", "4", "--size", "32", "--repeats", "1", "--batch-size", "2", "--num-workers", "0",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert [r["method"] for r in figures["results"]] == ["plain loop (cv2.imread + cv2.imwrite)", "handaug-translate (identity generator)"]
    assert figures["results"][0]["ratio"] == 1.0 and all(r["images_per_s"] > 0 for r in figures["results"])
    assert figures["settings"]["identity"] is True and figures["settings"]["torch_threads"] == 1


def test_planes_are_written_as_the_same_image_as_interleaved_pixels(tmp_path):
    from handaug.translation.state import Journal
    from handaug.translation.target import TargetFolder
    from handaug.translation.writer import write_image_atomically

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    journal = Journal(TargetFolder(tmp_path), "test")
    try:
        for name in ("a.png", "a.jpg"):
            write_image_atomically(tmp_path / f"hwc-{name}", rgb, journal)
            write_image_atomically(tmp_path / f"chw-{name}", np.ascontiguousarray(rgb.transpose(2, 0, 1)), journal, channels_first=True)
            assert (tmp_path / f"hwc-{name}").read_bytes() == (tmp_path / f"chw-{name}").read_bytes()
        assert np.array_equal(cv2.imread(str(tmp_path / "chw-a.png"))[..., ::-1], rgb)
        with pytest.raises(ValueError, match=r"expected \(3, H, W\) planes to write .*b.png, got shape \(20, 30, 3\)"):
            write_image_atomically(tmp_path / "b.png", rgb, journal, channels_first=True)
    finally:
        journal.close()
        journal.target.close()
