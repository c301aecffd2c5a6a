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

from handaug.translation import translate_dataset
from handaug.translation.engine import MANIFEST_FILE
from test_translate_guarantees import MASKS, MASKS_JSON, assert_one_error_line, checkpoint, plain_images, run, snapshot, write_dataset


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
