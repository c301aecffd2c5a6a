"""handaug-translate: every image translated once, everything else copied byte for byte, resumable, DDP-sharded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handaug import save_generator
from handaug.data.procedural_folder import write_procedural_folder
from handaug.registry import create_generator
from handaug.translation import translate_dataset
from handaug.translation.engine import MANIFEST_FILE, SHARD_DIR

MASKS = '{"mask_pattern": "../masks/{stem}.png"}'


def write_dataset(root: Path, n: int, size: int = 64) -> Path:
    """A procedural dataset laid out like a real one (images, masks, annotations, README) plus a calibration file."""
    write_procedural_folder(root, n, image_size=size)
    (root / "calibration.txt").write_text("fx 100\n")
    return root


def checkpoint(path: Path, ngf: int = 8, n_blocks: int = 1) -> Path:
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", ngf=ngf, n_blocks=n_blocks), path, background=1.0, trained_with_masks=True)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.translate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_translates_every_image_and_copies_everything_else(tmp_path):
    src = write_dataset(tmp_path / "src", 200)
    ckpt = checkpoint(tmp_path / "ckpt")
    report = translate_dataset(ckpt, src, tmp_path / "dst", "folder", json.loads(MASKS), num_workers=0, progress=False)
    before, after = files_under(src), files_under(tmp_path / "dst")
    images = [k for k in before if k.startswith("images/")]
    others = [k for k in before if not k.startswith("images/")]
    assert len(images) == 200 and len(others) == 402
    assert all(after[k] == before[k] for k in others)  # annotations, masks, README: byte-identical
    for name in images[:20]:
        a = cv2.imread(str(src / name))
        b = cv2.imread(str(tmp_path / "dst" / name))
        m = cv2.imread(str(src / "masks" / Path(name).name), cv2.IMREAD_GRAYSCALE) > 0
        assert a.shape == b.shape
        assert np.array_equal(a[~m], b[~m]) and (a[m] != b[m]).any()  # only the hand changed
    assert (report.images, report.images_translated, report.images_already_done) == (200, 200, 0)
    assert (report.files, report.files_copied, report.files_already_copied) == (402, 402, 0)
    manifest = json.loads((tmp_path / "dst" / MANIFEST_FILE).read_text())
    config = json.loads((ckpt / "config.json").read_text())
    assert manifest["checkpoint_sha256"] == config["weights_sha256"]
    assert manifest["source"] == str(src.resolve()) and manifest["images"] == 200 and manifest["handaug_version"]

    again = translate_dataset(ckpt, src, tmp_path / "dst", "folder", json.loads(MASKS), num_workers=0, progress=False)
    assert (again.images_translated, again.images_already_done, again.files_copied) == (0, 200, 0)


def test_jpeg_sources_stay_jpeg_and_unmasked_images_change_whole(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(src / f"{i}.jpg"), rng.integers(0, 255, (40, 52, 3), dtype=np.uint8))
    report = translate_dataset(checkpoint(tmp_path / "ckpt"), src, tmp_path / "dst", num_workers=0, progress=False)
    assert report.images_translated == 3
    out = cv2.imread(str(tmp_path / "dst" / "1.jpg"))
    assert out.shape == (40, 52, 3) and (tmp_path / "dst" / "1.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_bad_arguments(tmp_path):
    src = write_dataset(tmp_path / "src", 2)
    ckpt = checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="must not be the source folder or inside it"):
        translate_dataset(ckpt, src, src / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        translate_dataset(ckpt, tmp_path / "nowhere", tmp_path / "dst", progress=False)
    with pytest.raises(ValueError, match="unknown dataset name 'synthhandz'"):
        translate_dataset(ckpt, src, tmp_path / "dst", "synthhandz", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        translate_dataset(ckpt, src, tmp_path / "dst", batch_size=0, progress=False)
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.translate", str(ckpt), str(src), str(tmp_path / "d"),
                           "--dataset-kwargs", "[1]"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--dataset-kwargs must be a JSON object" in proc.stderr


@pytest.mark.slow
def test_resume_after_sigkill_does_not_redo_finished_files(tmp_path):
    src = write_dataset(tmp_path / "src", 200, size=128)
    ckpt = checkpoint(tmp_path / "ckpt", ngf=32, n_blocks=4)  # slow enough to be killed half way
    dst = tmp_path / "dst"
    args = [str(ckpt), str(src), str(dst), "--dataset-kwargs", MASKS, "--batch-size", "2", "--num-workers", "0",
            "--precision", "fp32", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "handaug.cli.translate", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((dst / "images").glob("*.png")) if (dst / "images").is_dir() else []) < 40:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (dst / "images").glob("*.png")}
    assert 40 <= len(finished) < 200, len(finished)

    out = run_cli(args, cwd=tmp_path).stdout
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert manifest["images"] == 200
    assert manifest["images_already_done"] == len(finished)
    assert manifest["images_translated"] == 200 - len(finished)
    assert f"{200 - len(finished)} translated now" in out
    assert all((dst / "images" / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())
    assert len(list((dst / "images").glob("*.png"))) == 200
    assert not list(dst.rglob(".*.handaug-part"))  # a killed write leaves nothing behind after the resume
    before = files_under(src)
    after = files_under(dst)
    assert all(after[k] == v for k, v in before.items() if not k.startswith("images/"))


@pytest.mark.slow
def test_two_processes_lose_and_duplicate_nothing(tmp_path):
    src = write_dataset(tmp_path / "src", 200)
    ckpt = checkpoint(tmp_path / "ckpt")
    dst = tmp_path / "dst"
    run_cli([str(ckpt), str(src), str(dst), "--dataset-kwargs", MASKS, "--accelerator", "cpu", "--devices", "2",
             "--num-workers", "0", "--no-progress"], cwd=tmp_path)
    shards = [json.loads((dst / SHARD_DIR / f"rank-{r}.json").read_text()) for r in (0, 1)]
    written = [set(s["translated"]) for s in shards]
    assert all(written) and not written[0] & written[1]  # both ranks worked, never on the same file
    assert written[0] | written[1] == {f"images/{i:04d}.png" for i in range(200)}
    assert sum(len(s["translated"]) for s in shards) == 200
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert (manifest["world_size"], manifest["images_translated"], manifest["files_copied"]) == (2, 200, 402)
    before, after = files_under(src), files_under(dst)
    assert all(after[k] == v for k, v in before.items() if not k.startswith("images/"))
