"""The run folder of ``handaug-train`` (issue 20): one run per folder, temporaries of its own, and a
``last.ckpt`` that is checked before training starts. Attacks and accidents, each refused with one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import lightning as L
import pytest
import torch
from test_cli import TINY  # noqa: E402 - the demo's config shrunk so that each run takes seconds
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug.training.resume import ResumeCheckpoint, last_checkpoint_path, resolve_resume_path
from handaug.training.run_lock import RUN_LOCK_FILE, RunFolderBusyError, RunFolderLock


def train(cwd, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "handaug.cli.train", "--demo", *TINY, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip


def one_line_error(proc):
    """The refusal: a non-zero exit and one line on stderr that starts with the program's name, no traceback."""
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("handaug-train: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ----------------------------------------------------------------------------- 5. one run per folder
def test_a_second_run_in_a_held_folder_is_refused_with_one_line_and_writes_nothing(tmp_path):
    root = tmp_path / "out"
    lock = RunFolderLock(root).acquire()  # a first run holds the folder (this process)
    try:
        line = one_line_error(train(tmp_path, "--trainer.default_root_dir", "out", "--ckpt_path", "auto"))
    finally:
        lock.release()
    assert f"another handaug-train run (process {os.getpid()}) is using" in line and "out" in line, line
    assert RUN_LOCK_FILE in line and "choose another --trainer.default_root_dir" in line
    assert sorted(p.name for p in root.iterdir()) == [RUN_LOCK_FILE]  # no checkpoints/, samples/, export/


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    seen = []

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            probe = subprocess.run([sys.executable, "-c", f"from handaug.training.run_lock import RunFolderLock\n"
                                    f"RunFolderLock({str(tmp_path)!r}).acquire()"], capture_output=True, text=True)  # fmt: skip
            seen.append(probe.returncode != 0 and "another handaug-train run" in probe.stderr)

    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                           callbacks=[ResumeCheckpoint(every_minutes=None), Probe()])  # fmt: skip
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
    assert seen == [True]
    RunFolderLock(tmp_path).acquire().release()  # free again once the fit is over


def test_each_writer_uses_a_temporary_name_of_its_own(tmp_path, monkeypatch):
    """Two runs used to share `.last.ckpt.handaug-part`: one renamed the other's half-written file away
    (FileNotFoundError). Now every write uses `.last.ckpt.<pid>.<random>.handaug-part`."""
    names = []
    real = L.Trainer.save_checkpoint

    def spy(self, filepath, *args, **kwargs):
        names.append(os.path.basename(filepath))
        return real(self, filepath, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", spy)
    L.seed_everything(0)
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0,
                           callbacks=[ResumeCheckpoint(every_n_batches=1, every_minutes=None)])  # fmt: skip
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
    assert len(names) == 3 and len(set(names)) == 3, names
    assert all(re.fullmatch(rf"\.last\.ckpt\.{os.getpid()}\.[0-9a-f]{{16}}\.handaug-part", n) for n in names), names
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]


def test_temporaries_of_killed_writers_are_removed_once_the_folder_is_held(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [folder / ".last.ckpt.handaug-part", folder / ".last.ckpt.4242.0123456789abcdef.handaug-part"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    mine = folder / "notes.handaug-part"
    mine.write_text("not a temporary of last.ckpt")
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                           callbacks=[ResumeCheckpoint(every_minutes=None)])  # fmt: skip
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
    assert not any(p.exists() for p in stale) and mine.read_text() == "not a temporary of last.ckpt"


def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_by_name_never_followed(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("someone's data")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / RUN_LOCK_FILE).symlink_to(precious)
    with pytest.raises(RunFolderBusyError, match=rf"lock '{re.escape(str(linked / RUN_LOCK_FILE))}' is a symbolic link"):
        RunFolderLock(linked).acquire()
    assert precious.read_text() == "someone's data"  # not truncated, no process id written into it
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / RUN_LOCK_FILE)
    with pytest.raises(RunFolderBusyError, match=rf"lock '{re.escape(str(fifo / RUN_LOCK_FILE))}' is not a regular file"):
        RunFolderLock(fifo).acquire()


def test_taking_a_held_lock_again_in_the_same_process_is_counted(tmp_path):
    first = RunFolderLock(tmp_path).acquire()
    again = RunFolderLock(tmp_path).acquire()  # handaug-train holds it, then ResumeCheckpoint asks
    assert again is first
    again.release()
    assert first.held
    first.release()
    assert not first.held


# ----------------------------------------------------------------------------- 13. a damaged or foreign last.ckpt
@pytest.fixture(scope="module")
def written_last(tmp_path_factory):
    """A real last.ckpt of a one-batch run of the tiny model."""
    root = tmp_path_factory.mktemp("run")
    L.seed_everything(0)
    trainer = tiny_trainer(root, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                           callbacks=[ResumeCheckpoint(every_minutes=None)])  # fmt: skip
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
    return last_checkpoint_path(root)


def test_the_runs_own_last_ckpt_passes(written_last):
    from handaug.training.resume import check_resume_checkpoint

    check_resume_checkpoint(written_last, tiny_hgan())


def _refused(path, model):
    from handaug.training.resume import ResumeError, check_resume_checkpoint

    with pytest.raises(ResumeError) as err:
        check_resume_checkpoint(path, model)
    message = str(err.value)
    assert message.startswith(f"checkpoint {str(path)!r}") and "\n" not in message, message
    return message


def test_a_truncated_last_ckpt_is_one_line(written_last, tmp_path):
    data = written_last.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 64):
        path = tmp_path / f"cut{cut}.ckpt"
        path.write_bytes(data[:cut])
        assert "cannot be read (truncated or corrupt?" in _refused(path, tiny_hgan())


def test_another_models_last_ckpt_is_one_line_naming_a_tensor(written_last):
    wider = _refused(written_last, tiny_hgan(generator_kwargs={"n_blocks": 2, "ngf": 4}))
    assert "does not fit this model: tensor 'generator_s2r." in wider and "other --model.* options" in wider
    shallower = _refused(written_last, tiny_hgan(generator_kwargs={"n_blocks": 1, "ngf": 8}))
    assert "that the model does not have" in shallower


def test_a_pickle_in_last_ckpt_is_never_unpickled(tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(pickle.dumps({"state_dict": Payload()}))
    assert "is a plain Python pickle" in _refused(plain, tiny_hgan())
    zipped = tmp_path / "zipped.ckpt"
    torch.save({"state_dict": {}, "hook": Payload()}, zipped)  # a torch zip whose pickle calls os.system
    assert "holds objects other than tensors and plain containers" in _refused(zipped, tiny_hgan())
    assert not marker.exists()
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert "not a Lightning checkpoint of handaug-train: it has no 'state_dict'" in _refused(other, tiny_hgan())


@pytest.mark.parametrize("ckpt_path", ["auto", "last", None])
def test_a_last_ckpt_that_is_a_folder_is_refused_before_training(tmp_path, ckpt_path):
    from handaug.training.resume import ResumeError

    last = last_checkpoint_path(tmp_path)
    last.mkdir(parents=True)
    with pytest.raises(ResumeError, match=f"{re.escape(str(last))} is a folder, not a checkpoint file"):
        resolve_resume_path(ckpt_path, tmp_path, overwrite_run=True)


def test_handaug_train_refuses_a_damaged_last_ckpt_and_a_folder_with_one_line(tmp_path, written_last):
    last = last_checkpoint_path(tmp_path / "out")
    last.parent.mkdir(parents=True)
    last.write_bytes(written_last.read_bytes()[:1000])
    line = one_line_error(train(tmp_path, "--trainer.default_root_dir", "out", "--ckpt_path", "last"))
    assert "cannot be read (truncated or corrupt?" in line and str(last.name) in line
    last.unlink()
    last.mkdir()
    line = one_line_error(train(tmp_path, "--trainer.default_root_dir", "out", "--ckpt_path", "auto"))
    assert "is a folder, not a checkpoint file" in line
    assert not (tmp_path / "out" / "samples").exists()  # refused before a single batch
