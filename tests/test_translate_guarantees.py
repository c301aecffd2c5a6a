"""handaug-translate against a hostile or careless user: it loses nothing, leaks nothing, crashes on nothing.

Each test replays one attack of issue 11 on a tiny dataset (32 px procedural hands, a tiny
generator): DST holding the user's files, DST above SRC, symbolic links out of SRC, two runs into
one DST, a rerun with other settings, oversized / truncated / bomb images and over-long names,
unusable arguments and targets, and the mode of written files.
"""

from __future__ import annotations

import errno
import fcntl
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
from test_image_size import png_header

from handaug import save_generator
from handaug.cli.translate import main
from handaug.data.procedural_folder import write_procedural_folder
from handaug.registry import create_generator
from handaug.translation import engine, translate_dataset
from handaug.translation import target as target_module
from handaug.translation.engine import MANIFEST_FILE
from handaug.translation.state import TargetFolderError

MASKS = {"mask_pattern": "../masks/{stem}.png"}
MASKS_JSON = json.dumps(MASKS)


def write_dataset(root: Path, n: int = 6, size: int = 32) -> Path:
    write_procedural_folder(root, n, image_size=size)
    (root / "calibration.txt").write_text("fx 100\n")
    return root


def checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_generator(create_generator("resnet", ngf=8, n_blocks=1), path, background=1.0, trained_with_masks=True)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file and link under ``root``: its bytes (a link: its target text)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = b"-> " + os.fsencode(os.readlink(path))
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def run(ckpt: Path, src: Path, dst: Path, *extra: str, capsys) -> tuple[int, str, str]:
    """``handaug-translate`` in this process: (exit code, stdout, stderr)."""
    args = [str(ckpt), str(src), str(dst), "--num-workers", "0", "--no-progress", *extra]
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("handaug-translate: error:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and err.rstrip().splitlines()[-1] == lines[0], err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


# -- 2. DST holding the user's files, DST above SRC -------------------------------------------


def test_a_folder_of_the_users_is_refused_and_never_changed(tmp_path, ckpt, capsys):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "mine"
    (dst / "downloads").mkdir(parents=True)
    (dst / "images").mkdir()
    (dst / "README.md").write_text("my own notes\n")  # SRC has a README.md too
    (dst / "downloads" / ".x.iso.part").write_bytes(b"half a download")
    (dst / "images" / "0003.png").write_bytes(b"my picture, not a translation")  # a target image's name
    (dst / "images" / ".0001.png.0123456789abcdef.handaug-part").write_bytes(b"looks like a temporary of handaug's")
    before = snapshot(dst)

    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(dst), "not empty", "--allow-nonempty-target")
    assert snapshot(dst) == before and sorted(os.listdir(dst)) == ["README.md", "downloads", "images"]

    # Even when allowed into the folder, a name clash is refused, never overwritten or taken as "done".
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, "--allow-nonempty-target", capsys=capsys)
    assert_one_error_line(code, err, "README.md exists and was not written by handaug", "images/0003.png")
    assert {k: v for k, v in snapshot(dst).items() if not k.startswith(".handaug-translate")} == before

    # Without the clashes, the run writes beside the user's files; they stay byte for byte, also on a rerun.
    (dst / "README.md").unlink()
    (dst / "images" / "0003.png").unlink()
    before = snapshot(dst)
    code, out, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, "--allow-nonempty-target", capsys=capsys)
    assert code == 0, err
    assert "6 translated now" in out
    after = snapshot(dst)
    assert all(after[k] == v for k, v in before.items())
    assert all(after[k] == v for k, v in snapshot(src).items() if not k.startswith("images/"))
    code, out, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)  # resuming needs no flag
    assert code == 0 and "0 translated now, 6 already done" in out, err
    outputs = {k: v for k, v in snapshot(dst).items() if not k.startswith(".handaug-translate") and k != MANIFEST_FILE}
    assert outputs == {k: v for k, v in after.items() if not k.startswith(".handaug-translate") and k != MANIFEST_FILE}


def test_a_target_that_contains_the_source_is_refused(tmp_path, ckpt, capsys):
    data = tmp_path / "data"
    src = write_dataset(data / "src")
    (src / "annotations" / "big.bin.part").write_bytes(b"a file of the dataset that ends in .part")
    before = snapshot(data)
    code, _, err = run(ckpt, src, data, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, "must not contain the source folder", str(data))
    assert snapshot(data) == before


def test_cleanup_after_a_crash_removes_only_journalled_temporaries(tmp_path, ckpt, monkeypatch):
    src = write_dataset(tmp_path / "src", n=8)
    dst = tmp_path / "dst"
    from handaug.translation import engine

    class Killed(Exception):
        pass

    real_write = engine.write_image_atomically
    calls = []

    def dies_on_the_fourth(path, rgb, journal, *options, **layout):
        calls.append(path)
        if len(calls) == 4:  # as a kill -9 mid-write: a journalled temporary, no image
            temp = path.with_name(f".{path.name}.feedfacefeedface.handaug-part")
            journal.record(path, temp)
            temp.write_bytes(b"half an image")
            raise Killed
        real_write(path, rgb, journal, *options, **layout)

    monkeypatch.setattr(engine, "write_image_atomically", dies_on_the_fourth)
    with pytest.raises(Killed):
        translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, batch_size=2, writer_threads=1, progress=False)
    monkeypatch.setattr(engine, "write_image_atomically", real_write)
    finished = {p.name: p.stat().st_mtime_ns for p in (dst / "images").glob("*.png")}
    assert 3 <= len(finished) < 8 and "0003.png" not in finished
    assert (dst / "images" / ".0003.png.feedfacefeedface.handaug-part").exists()
    user_part = dst / "images" / ".0005.png.0123456789abcdef.handaug-part"  # not in the journal: not handaug's
    user_part.write_bytes(b"the user's")

    report = translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    assert (report.images_translated, report.images_already_done) == (8 - len(finished), len(finished))
    assert all((dst / "images" / name).stat().st_mtime_ns == mtime for name, mtime in finished.items())
    assert not (dst / "images" / ".0003.png.feedfacefeedface.handaug-part").exists()
    assert user_part.read_bytes() == b"the user's"


def test_a_translated_dataset_translated_again_keeps_its_own_record(tmp_path, ckpt):
    src = write_dataset(tmp_path / "src")
    translate_dataset(ckpt, src, tmp_path / "once", "folder", MASKS, num_workers=0, progress=False)
    report = translate_dataset(ckpt, tmp_path / "once", tmp_path / "twice", "folder", MASKS, num_workers=0, progress=False)
    assert report.images_translated == 6
    reasons = {s["path"]: s["reason"] for s in report.skipped}
    assert "earlier translation" in reasons[MANIFEST_FILE] and "earlier translation" in reasons[".handaug-translate/run.json"]
    record = json.loads((tmp_path / "twice" / ".handaug-translate" / "run.json").read_text())
    assert record["source"] == str((tmp_path / "once").resolve())


# -- 3. symbolic links out of SRC -------------------------------------------------------------


def test_symbolic_links_out_of_the_source_are_not_followed(tmp_path, ckpt, capsys):
    src = write_dataset(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "folder").mkdir(parents=True)
    (elsewhere / "secret").write_bytes(b"SECRET calibration")
    (elsewhere / "folder" / "more.txt").write_bytes(b"SECRET folder")
    cv2.imwrite(str(elsewhere / "face.png"), np.full((32, 32, 3), 7, np.uint8))
    (src / "annotations" / "calib.txt").symlink_to(elsewhere / "secret")
    (src / "extra").symlink_to(elsewhere / "folder", target_is_directory=True)
    (src / "images" / "0002.png").unlink()
    (src / "images" / "0002.png").symlink_to(elsewhere / "face.png")
    (src / "annotations" / "dangling.txt").symlink_to(tmp_path / "nowhere")
    (src / "annotations" / "same.json").symlink_to(src / "annotations" / "0000.json")  # inside SRC: fine
    dst = tmp_path / "dst"

    code, out, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert code == 0, err
    assert not any(b"SECRET" in v for v in snapshot(dst).values())
    for name in ("annotations/calib.txt", "extra", "images/0002.png", "annotations/dangling.txt"):
        assert not os.path.lexists(dst / name), name
    assert (dst / "annotations" / "same.json").read_bytes() == (src / "annotations" / "0000.json").read_bytes()
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert "outside the source folder" in reasons["annotations/calib.txt"]
    assert "outside the source folder" in reasons["extra"]
    assert "outside the source folder" in reasons["images/0002.png"]
    assert "broken symbolic link" in reasons["annotations/dangling.txt"]
    assert (manifest["images_skipped"], manifest["images_translated"]) == (1, 5)
    assert "1 skipped" in out and "annotations/calib.txt" in err


# -- 4. two runs into one DST -----------------------------------------------------------------


def test_a_run_into_a_target_whose_lock_is_held_is_refused(tmp_path, ckpt):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    (dst / ".handaug-translate").mkdir(parents=True)
    with open(dst / ".handaug-translate" / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running handaug-translate holds it
        proc = subprocess.run([sys.executable, "-m", "handaug.cli.translate", str(ckpt), str(src), str(dst),
                               "--dataset-kwargs", MASKS_JSON, "--num-workers", "0", "--no-progress"],
                              capture_output=True, text=True, timeout=300)
    assert_one_error_line(proc.returncode, proc.stderr, "another handaug-translate run", str(dst))
    assert sorted(os.listdir(dst)) == [".handaug-translate"]
    assert sorted(os.listdir(dst / ".handaug-translate")) == ["lock"]


# -- 5. stale outputs labelled as new ---------------------------------------------------------


def test_outputs_of_another_checkpoint_or_settings_are_refused_or_redone(tmp_path, ckpt):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    first = translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    old = snapshot(dst)
    other = checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(TargetFolderError, match=r"checkpoint_sha256 was .*--overwrite"):
        translate_dataset(other, src, dst, "folder", MASKS, num_workers=0, progress=False)
    with pytest.raises(TargetFolderError, match=r"mask_mode was 'composite', now 'none'"):
        translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False, mask_mode="none")
    with pytest.raises(TargetFolderError, match=r"dataset_kwargs was"):
        translate_dataset(ckpt, src, dst, "folder", {"mask_pattern": "../masks/{stem}.png", "recursive": True},
                          num_workers=0, progress=False)
    assert snapshot(dst) == old

    redone = translate_dataset(other, src, dst, "folder", MASKS, num_workers=0, progress=False, overwrite=True)
    assert (redone.images_translated, redone.images_already_done, redone.files_copied) == (6, 0, first.files_copied)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert manifest["checkpoint_sha256"] == redone.checkpoint_sha256 != first.checkpoint_sha256
    assert snapshot(dst)["images/0000.png"] != old["images/0000.png"]


def test_a_killed_runs_settings_are_checked_too(tmp_path, ckpt, monkeypatch):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    from handaug.translation import engine

    def killed(*args):
        raise KeyboardInterrupt  # the run dies before its manifest is written

    monkeypatch.setattr(engine, "_finish_shards", killed)
    with pytest.raises(KeyboardInterrupt):
        translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    monkeypatch.undo()
    assert not (dst / MANIFEST_FILE).exists() and list((dst / "images").glob("*.png"))
    with pytest.raises(TargetFolderError, match="checkpoint_sha256"):
        translate_dataset(checkpoint(tmp_path / "other", seed=1), src, dst, "folder", MASKS, num_workers=0, progress=False)


def test_a_stopped_run_finishes_its_pending_writes_before_it_lets_go(tmp_path, ckpt, monkeypatch):
    """Ctrl-C after translating: slow writes still in the pool when the run stops are finished
    before the journal closes and the lock is released, never after the call has returned."""
    import threading

    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    real_write = engine.write_image_atomically

    def slow_write(*args, **kwargs):
        time.sleep(0.3)
        real_write(*args, **kwargs)

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "write_image_atomically", slow_write)
    monkeypatch.setattr(engine, "_finish_shards", killed)
    with pytest.raises(KeyboardInterrupt):
        translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("handaug-writer")]
    written = sorted(p.name for p in (dst / "images").iterdir())
    assert written == [f"{i:04d}.png" for i in range(6)]  # every translation paid for is on disk, none half-written
    monkeypatch.undo()
    report = translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    assert (report.images_translated, report.images_already_done) == (0, 6)


# -- 7c / 8. huge, bomb, truncated, untranslatable images; long names -------------------------


def plain_images(root: Path, n: int = 4, size: int = 24) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / f"{i}.png"), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return root


def test_bad_images_are_skipped_counted_and_listed(tmp_path, ckpt, capsys, monkeypatch):
    src = plain_images(tmp_path / "src")
    (src / "huge.png").write_bytes(png_header(10_000, 10_000))  # 100 MP: over the 50 MP default
    (src / "bomb.png").write_bytes(png_header(20_000, 20_000))  # Pillow itself refuses to open it
    whole = (src / "0.png").read_bytes()
    (src / "truncated.png").write_bytes(whole[: len(whole) // 2])
    cv2.imwrite(str(src / "tiny.png"), np.zeros((2, 2, 3), np.uint8))  # padded for the generator, kept at 2×2
    cv2.imwrite(str(src / "unlucky.png"), np.zeros((23, 23, 3), np.uint8))  # the generator fails on this one
    long_name = "n" * 246 + ".png"  # 250 bytes: the temporary name must still fit NAME_MAX
    cv2.imwrite(str(src / long_name), np.zeros((24, 24, 3), np.uint8))
    decoded = []  # the files whose bytes are read to be decoded, after their header passed
    from handaug.data import folder

    real_read = folder.read_bytes_from
    monkeypatch.setattr(folder, "read_bytes_from", lambda file, path, *a: decoded.append(Path(path).name) or real_read(file, path, *a))
    real_translate = engine._Translator._translate

    def failing_on_23_pixels(self, images, masks):
        if images.shape[-1] == 23:
            raise RuntimeError("the generator failed")
        return real_translate(self, images, masks)

    monkeypatch.setattr(engine._Translator, "_translate", failing_on_23_pixels)
    dst = tmp_path / "dst"

    code, out, err = run(ckpt, src, dst, capsys=capsys)
    assert code == 0, err
    assert "10 images (6 translated now, 0 already done, 4 skipped)" in out
    assert "huge.png" not in decoded and "bomb.png" not in decoded and "tiny.png" in decoded  # refused from the header alone
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert sorted(reasons) == ["bomb.png", "huge.png", "truncated.png", "unlucky.png"]
    assert "10000×10000" in reasons["huge.png"] and "maximum image size of 50000000 pixels" in reasons["huge.png"]
    assert "too large" in reasons["bomb.png"]
    assert "cannot be decoded" in reasons["truncated.png"]
    assert "could not be translated: the generator failed" in reasons["unlucky.png"]
    assert manifest["images_skipped"] == 4 and (dst / long_name).is_file()
    assert cv2.imread(str(dst / "tiny.png")).shape == (2, 2, 3)
    assert not {"huge.png", "bomb.png", "truncated.png", "unlucky.png"} & set(os.listdir(dst))


def test_the_maximum_image_size_is_an_option(tmp_path, ckpt, capsys):
    src = plain_images(tmp_path / "src", n=2, size=24)
    cv2.imwrite(str(src / "big.png"), np.zeros((40, 40, 3), np.uint8))
    code, out, err = run(ckpt, src, tmp_path / "dst", "--max-image-pixels", "1000", capsys=capsys)
    assert code == 0, err
    assert "(2 translated now, 0 already done, 1 skipped)" in out and "big.png" in err
    manifest = json.loads((tmp_path / "dst" / MANIFEST_FILE).read_text())
    assert "maximum image size of 1000 pixels" in manifest["skipped"][0]["reason"]


# -- 10. clear one-line errors ----------------------------------------------------------------


def test_an_unknown_dataset_option_is_named_with_the_accepted_ones(tmp_path, ckpt, capsys):
    src = write_dataset(tmp_path / "src")
    code, _, err = run(ckpt, src, tmp_path / "dst", "--dataset-kwargs", '{"mask_patern": "../masks/{stem}.png"}',
                       capsys=capsys)
    assert_one_error_line(code, err, "'mask_patern'", "--dataset-kwargs", "mask_pattern, max_unreadable_fraction")
    for options, needle in (('{"mask_pattern": 1}', "mask_pattern must be a file-name pattern"),
                            ('{"mask_pattern": "{frame}.png"}', "may only use {stem}, {name} and {ext}"),
                            ('{"max_unreadable_fraction": "all"}', "max_unreadable_fraction must be a number")):
        code, _, err = run(ckpt, src, tmp_path / "dst", "--dataset-kwargs", options, capsys=capsys)
        assert_one_error_line(code, err, needle)
    assert not (tmp_path / "dst").exists()


def test_a_target_that_is_a_file_is_one_clear_line(tmp_path, ckpt, capsys):
    src = write_dataset(tmp_path / "src")
    (tmp_path / "dst").write_bytes(b"a file of the user's")
    code, _, err = run(ckpt, src, tmp_path / "dst", "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(tmp_path / "dst"), "is not a folder")
    assert (tmp_path / "dst").read_bytes() == b"a file of the user's"


def test_a_read_only_target_is_one_clear_line(tmp_path, ckpt, capsys, monkeypatch):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    dst.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: refuse as the kernel refuses everyone else
        real_mkdir, real_open, real_os_mkdir = Path.mkdir, os.open, os.mkdir

        def refused(path, dir_fd=None):  # handaug reaches DST's files relative to a folder descriptor
            base = os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None else os.getcwd()
            absolute = Path(os.path.abspath(os.path.join(base, os.fsdecode(path))))
            return absolute.is_relative_to(dst) and absolute != dst

        def mkdir(self, *args, **kwargs):
            if refused(self) and not self.is_dir():
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        def os_mkdir(path, *args, dir_fd=None, **kwargs):
            if refused(path, dir_fd):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_os_mkdir(path, *args, dir_fd=dir_fd, **kwargs)

        def open_(path, flags, *args, dir_fd=None, **kwargs):
            if refused(path, dir_fd) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
        monkeypatch.setattr(os, "mkdir", os_mkdir)
        monkeypatch.setattr(os, "open", open_)
    try:
        code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    finally:
        dst.chmod(0o755)
    assert_one_error_line(code, err, str(dst), "Permission denied")
    assert os.listdir(dst) == []


def test_a_full_disk_is_one_clear_line_and_leaves_no_partial_file(tmp_path, ckpt, capsys, monkeypatch):
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"

    class FullDisk:
        """A file that takes a few bytes, then fails as a full disk does."""

        def __init__(self, path, mode="r", *args, **kwargs):
            self.f = open(path, mode, *args, **kwargs)

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(target_module, "open", FullDisk, raising=False)  # every write into DST goes through it
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(dst), "No space left on device")
    assert not list((dst / "images").glob("*.png")) if (dst / "images").exists() else True
    assert not [p for p in dst.rglob(".*") if p.is_file() and p.parent.name != "journal" and p.name != "lock"]
    for path in dst.rglob("*"):  # whatever was written is whole: a copy equal to its source
        relative = path.relative_to(dst)
        if path.is_file() and (src / relative).is_file():
            assert path.read_bytes() == (src / relative).read_bytes(), relative


# -- 12. file modes ---------------------------------------------------------------------------


def test_written_files_get_the_mode_open_gives_under_the_umask(tmp_path, ckpt):
    src = write_dataset(tmp_path / "src")
    os.chmod(src / "calibration.txt", 0o600)  # a copy is a new file: its mode comes from the umask, not the source
    previous = os.umask(0o027)
    try:
        translate_dataset(ckpt, src, tmp_path / "dst", "folder", MASKS, num_workers=0, progress=False)
    finally:
        os.umask(previous)
    dst = tmp_path / "dst"
    for name in ("images/0000.png", "annotations/0000.json", "calibration.txt", MANIFEST_FILE):
        assert (dst / name).stat().st_mode & 0o777 == 0o640, name


@pytest.mark.slow
def test_two_concurrent_runs_into_one_target(tmp_path):
    src = write_dataset(tmp_path / "src", n=60, size=64)
    torch.manual_seed(0)
    slow = save_generator(create_generator("resnet", ngf=32, n_blocks=4), tmp_path / "slow", background=1.0,
                          trained_with_masks=True)  # slow enough that the second run starts during the first
    dst = tmp_path / "dst"
    args = [sys.executable, "-m", "handaug.cli.translate", str(slow), str(src), str(dst), "--dataset-kwargs", MASKS_JSON,
            "--batch-size", "2", "--num-workers", "0", "--precision", "fp32", "--no-progress"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None and not list((dst / "images").glob("*.png") if (dst / "images").is_dir() else []):
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # hold the first run mid-way, lock taken, however slow the second is to start
    try:
        second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert_one_error_line(second.returncode, second.stderr, "another handaug-translate run", f"process {first.pid}")
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert (manifest["images_translated"], manifest["images_already_done"]) == (60, 0)  # each image once, by the first
    assert len(list((dst / "images").glob("*.png"))) == 60 and not list(dst.rglob("*.handaug-part"))
