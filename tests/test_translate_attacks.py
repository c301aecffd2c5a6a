"""handaug-translate against issue 20's attacks: links inside its own state and in DST, source files
swapped after planning, names that are not UTF-8, damaged run records and annotation files.

Each test replays one attack on a tiny dataset (24-32 px images, a tiny generator) and checks
that nothing outside DST changes, nothing outside SRC is read, and what cannot be used is
skipped and listed or refused in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_translate_guarantees import MASKS, MASKS_JSON, assert_one_error_line, checkpoint, plain_images, run, snapshot, write_dataset

from handaug.translation import translate_dataset
from handaug.translation.engine import MANIFEST_FILE


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", rgb)[1].tobytes()


# -- item 2: file names that are not valid UTF-8 ----------------------------------------------


def test_names_that_are_not_utf8_are_translated_or_skipped_and_listed(tmp_path, ckpt):
    """``cv2.imread(str(path))`` segfaults on ``b"bad\\xff.png"``: the run died with no manifest."""
    src = plain_images(tmp_path / "src", n=2)
    (src / os.fsdecode(b"bad\xff.png")).write_bytes(png(np.full((24, 24, 3), 90, np.uint8)))
    (src / os.fsdecode(b"worse\xfe.png")).write_bytes(png(np.full((24, 24, 3), 90, np.uint8))[:60])  # truncated
    (src / os.fsdecode(b"notes\xe9.txt")).write_bytes(b"a Latin-1 name")
    dst = tmp_path / "dst"
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.translate", str(ckpt), str(src), str(dst),
                           "--num-workers", "1", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert "4 images (3 translated now, 0 already done, 1 skipped)" in proc.stdout
    written = set(os.listdir(os.fsencode(dst)))
    assert {b"bad\xff.png", b"notes\xe9.txt", b"0.png", b"1.png"} <= written and b"worse\xfe.png" not in written
    assert cv2.imdecode(np.fromfile(os.fsencode(dst / os.fsdecode(b"bad\xff.png")), np.uint8), cv2.IMREAD_COLOR).shape == (24, 24, 3)
    assert (dst / os.fsdecode(b"notes\xe9.txt")).read_bytes() == b"a Latin-1 name"
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert [(s["path"], "cannot be decoded" in s["reason"]) for s in manifest["skipped"]] == [(os.fsdecode(b"worse\xfe.png"), True)]


# -- item 1: links inside handaug's own state in DST ------------------------------------------


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_never_written(tmp_path, ckpt, capsys):
    """The lock was opened with O_CREAT and truncated: a link there truncated a file elsewhere."""
    src = write_dataset(tmp_path / "src")
    precious = tmp_path / "elsewhere" / "precious.txt"
    precious.parent.mkdir()
    precious.write_bytes(b"the user's file")
    dst = tmp_path / "dst"
    (dst / ".handaug-translate").mkdir(parents=True)
    (dst / ".handaug-translate" / "lock").symlink_to(precious)
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(dst / ".handaug-translate" / "lock"), "symbolic link")
    assert precious.read_bytes() == b"the user's file"
    assert sorted(os.listdir(dst / ".handaug-translate")) == ["lock"] and sorted(os.listdir(dst)) == [".handaug-translate"]


@pytest.mark.parametrize("dangling", [False, True], ids=["to a folder", "dangling"])
def test_a_state_folder_that_is_a_link_is_refused_and_nothing_is_written_through_it(tmp_path, ckpt, capsys, dangling):
    """A link DST/.handaug-translate put the lock, the journal and the run record outside DST."""
    src = write_dataset(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    if not dangling:
        elsewhere.mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / ".handaug-translate").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(dst / ".handaug-translate"), "symbolic link")
    assert (not elsewhere.exists()) if dangling else os.listdir(elsewhere) == []
    assert os.listdir(dst) == [".handaug-translate"]


def test_journal_paths_through_a_linked_folder_of_dst_delete_nothing_outside_dst(tmp_path, ckpt, capsys):
    """A journal path through DST/images, now a link, made a rerun delete a temporary outside DST
    and --overwrite delete the user's file of the same name there."""
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    journal = dst / ".handaug-translate" / "journal" / "killed-rank0.jsonl"  # as a killed run left it
    journal.write_text(json.dumps({"path": "images/0001.png", "temp": "images/.0001.png.feedfacefeedface.handaug-part"}) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0000.png").write_bytes(b"the user's picture")
    (elsewhere / ".0001.png.feedfacefeedface.handaug-part").write_bytes(b"the user's download")
    (dst / "images").rename(tmp_path / "images.old")
    (dst / "images").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)

    for extra in ((), ("--overwrite",)):
        code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, *extra, capsys=capsys)
        assert_one_error_line(code, err, "images is a symbolic link")
        assert snapshot(elsewhere) == before, extra


# -- item 3: source files swapped for links after planning -------------------------------------


def swap_after_planning(monkeypatch, swap) -> None:
    """Run ``swap()`` right after the run is planned, as another process would while the run goes on."""
    from handaug.translation import engine

    real = engine.build_plan

    def planned_then_swapped(*args, **kwargs):
        plan = real(*args, **kwargs)
        swap()
        return plan

    monkeypatch.setattr(engine, "build_plan", planned_then_swapped)


def outside(tmp_path: Path) -> Path:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cv2.imwrite(str(elsewhere / "face.png"), np.full((32, 32, 3), 7, np.uint8))
    cv2.imwrite(str(elsewhere / "mask.png"), np.full((32, 32), 255, np.uint8))
    (elsewhere / "secret").write_bytes(b"SECRET of the user's")
    return elsewhere


def test_source_files_swapped_for_links_after_planning_are_skipped_and_listed(tmp_path, ckpt, capsys, monkeypatch):
    """Files were checked for links when planned, then opened by name: an image, a mask and an
    annotation replaced by links to files outside SRC were read, translated and copied."""
    src = write_dataset(tmp_path / "src")
    elsewhere = outside(tmp_path)

    def swap():
        for name, target in (("images/0001.png", "face.png"), ("masks/0002.png", "mask.png"),
                             ("annotations/0000.json", "secret"), ("calibration.txt", "secret")):
            (src / name).unlink()
            (src / name).symlink_to(elsewhere / target)
        (src / "images" / "0003.png").unlink()  # another regular file in its place: not the one planned
        os.link(elsewhere / "face.png", src / "images" / "0003.png")

    swap_after_planning(monkeypatch, swap)
    dst = tmp_path / "dst"
    code, out, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert code == 0, err
    assert not any(b"SECRET" in v for v in snapshot(dst).values())
    for name in ("images/0001.png", "images/0002.png", "images/0003.png", "annotations/0000.json", "calibration.txt"):
        assert not os.path.lexists(dst / name), name
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert sorted(reasons) == ["annotations/0000.json", "calibration.txt", "images/0001.png", "images/0002.png",
                               "images/0003.png", "masks/0002.png"]  # the mask is also a file of SRC, copied
    for name in ("images/0001.png", "images/0002.png", "annotations/0000.json", "calibration.txt", "masks/0002.png"):
        assert "replaced by a symbolic link" in reasons[name], (name, reasons[name])
    assert "replaced by another file" in reasons["images/0003.png"]
    assert reasons["images/0002.png"].startswith("masks/0002.png: replaced by a symbolic link")
    assert (manifest["images_translated"], manifest["images_skipped"], manifest["files_skipped"]) == (3, 3, 3)
    assert "6 file(s)" in err


def test_a_source_folder_swapped_for_a_link_after_planning_is_not_read(tmp_path, ckpt, capsys, monkeypatch):
    """O_NOFOLLOW guards only the last part of a path: the files' identities catch a folder swapped for a link."""
    src = write_dataset(tmp_path / "src")
    elsewhere = outside(tmp_path)
    (elsewhere / "images").mkdir()
    (elsewhere / "masks").mkdir()  # where "../masks/{stem}.png" leads from the linked folder
    for i in range(6):
        cv2.imwrite(str(elsewhere / "images" / f"{i:04d}.png"), np.full((32, 32, 3), 7, np.uint8))
        cv2.imwrite(str(elsewhere / "masks" / f"{i:04d}.png"), np.full((32, 32), 255, np.uint8))

    def swap():
        (src / "images").rename(tmp_path / "images.old")
        (src / "images").symlink_to(elsewhere / "images", target_is_directory=True)

    swap_after_planning(monkeypatch, swap)
    dst = tmp_path / "dst"
    code, out, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert code == 0, err
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert (manifest["images_translated"], manifest["images_skipped"]) == (0, 6)
    assert all("replaced by" in s["reason"] or "outside the source" in s["reason"] for s in manifest["skipped"])
    assert not list((dst / "images").glob("*.png")) if (dst / "images").exists() else True


# -- item 7: a missing or damaged run record ----------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "corrupt", "a list", "a link"])
def test_outputs_without_a_readable_run_record_are_never_counted_as_done(tmp_path, ckpt, capsys, damage):
    """Without run.json, a rerun with another checkpoint counted every old image as done and the
    manifest named the new checkpoint."""
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    translate_dataset(ckpt, src, dst, "folder", MASKS, num_workers=0, progress=False)
    record = dst / ".handaug-translate" / "run.json"
    elsewhere = tmp_path / "run.json"
    elsewhere.write_bytes(record.read_bytes())
    record.unlink()
    if damage == "corrupt":
        record.write_bytes(b'{"checkpoint_sha256": "')
    elif damage == "a list":
        record.write_text("[]")
    elif damage == "a link":  # the old record itself, but not a file of handaug's
        record.symlink_to(elsewhere)
    old = snapshot(dst / "images")
    other = checkpoint(tmp_path / "other", seed=1)
    code, _, err = run(other, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(record), "missing or unreadable", "--overwrite")
    assert snapshot(dst / "images") == old

    code, out, err = run(other, src, dst, "--dataset-kwargs", MASKS_JSON, "--overwrite", capsys=capsys)
    assert code == 0 and "6 translated now, 0 already done" in out, err
    assert snapshot(dst / "images") != old
    assert elsewhere.read_bytes().startswith(b"{")  # --overwrite removed the link, never its target


# -- item 8: annotation files that are too deep or not finite -----------------------------------


def test_a_deeply_nested_or_non_finite_annotation_is_a_skipped_listed_image(tmp_path, ckpt, capsys):
    """One annotation JSON nested 100,000 deep aborted the whole run with a RecursionError
    traceback; NaN and infinite keypoints were accepted."""
    src = write_dataset(tmp_path / "src")
    annotations = src / "annotations"
    (annotations / "0001.json").write_text("[" * 100_000 + "]" * 100_000)
    for name, key, value in (("0002.json", "keypoints_2d", "NaN"), ("0003.json", "keypoints_3d", "1e999")):
        record = json.loads((annotations / name).read_text())
        record[key][0][0] = "@"
        (annotations / name).write_text(json.dumps(record).replace('"@"', value))
    options = json.dumps({**MASKS, "keypoints": "../annotations/{stem}.json"})
    code, out, err = run(ckpt, src, tmp_path / "dst", "--dataset-kwargs", options, capsys=capsys)
    assert code == 0, err
    assert "6 images (3 translated now, 0 already done, 3 skipped)" in out
    manifest = json.loads((tmp_path / "dst" / MANIFEST_FILE).read_text())
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert sorted(reasons) == ["images/0001.png", "images/0002.png", "images/0003.png"]
    assert "nests arrays/objects more than 32 deep" in reasons["images/0001.png"]
    assert "NaN" in reasons["images/0002.png"] and "0002.json" in reasons["images/0002.png"]
    assert "keypoints_3d" in reasons["images/0003.png"] and "infinite" in reasons["images/0003.png"]


# -- item 12: DST changed under a running translation --------------------------------------------


def test_a_dst_folder_swapped_for_a_link_mid_run_is_never_written_through(tmp_path, ckpt, capsys, monkeypatch):
    """Folders of DST were checked only when planning: DST/images swapped for a link mid-run got
    thousands of files written outside DST and the run ended in a traceback."""
    from handaug.translation import engine

    src = write_dataset(tmp_path / "src", n=8)
    dst = tmp_path / "dst"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_write = engine.write_image_atomically
    calls = []

    def swapped_before_the_third(path, rgb, journal, *options, **layout):
        calls.append(path)
        if len(calls) == 3:
            (dst / "images").rename(tmp_path / "images.old")
            (dst / "images").symlink_to(elsewhere, target_is_directory=True)
        real_write(path, rgb, journal, *options, **layout)

    monkeypatch.setattr(engine, "write_image_atomically", swapped_before_the_third)
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, "--batch-size", "2", capsys=capsys)
    assert_one_error_line(code, err, str(dst / "images"), "symbolic link")
    assert os.listdir(elsewhere) == []
    before_the_swap = sorted(os.listdir(tmp_path / "images.old"))  # the folder handaug made, moved by the user
    assert {"0000.png", "0001.png"} <= set(before_the_swap) <= {f"{i:04d}.png" for i in range(8)}  # (a write in flight may finish there)
    assert all(cv2.imread(str(tmp_path / "images.old" / name)).shape == (32, 32, 3) for name in before_the_swap)

    monkeypatch.undo()
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)  # a rerun refuses the link
    assert_one_error_line(code, err, "images is a symbolic link")
    assert os.listdir(elsewhere) == []
