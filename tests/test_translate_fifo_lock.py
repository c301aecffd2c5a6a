"""A translate lock that is not a regular file (a FIFO) is one line naming the file (issue 20, item 15)."""

from __future__ import annotations

import os

from test_translate_guarantees import MASKS_JSON, assert_one_error_line, ckpt, run, write_dataset  # noqa: F401 - ckpt: fixture


def test_a_fifo_lock_is_refused_naming_it(tmp_path, ckpt, capsys):
    """It used to end in '[Errno 22] Invalid argument' with no file name (or block on open)."""
    src = write_dataset(tmp_path / "src")
    dst = tmp_path / "dst"
    (dst / ".handaug-translate").mkdir(parents=True)
    lock = dst / ".handaug-translate" / "lock"
    os.mkfifo(lock)
    code, _, err = run(ckpt, src, dst, "--dataset-kwargs", MASKS_JSON, capsys=capsys)
    assert_one_error_line(code, err, str(lock))
    assert sorted(os.listdir(dst)) == [".handaug-translate"]
