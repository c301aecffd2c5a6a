"""Adapters with device="cuda" in forked processes: one handaug error naming the ways that work, never torch's.

There is no GPU here, so the adapters are made to believe CUDA is available while they are built
(``torch.cuda.is_available``/``device_count`` patched); the guard must fire before anything
touches CUDA. Simulated: torch's bad-fork flag patched to True. Real: DataLoader workers started
with fork, which inherit the adapter from the parent.
"""

from __future__ import annotations

import os
import pickle

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

import handaug.synth_to_real
from handaug import save_generator
from handaug.integrations import albumentations as albu_adapter
from handaug.integrations import kornia as kornia_adapter
from handaug.integrations import torchvision as tv_adapter
from handaug.integrations.workers import CUDAInForkedProcessError, ForkGuard
from handaug.registry import create_generator

WAYS_THAT_WORK = r"multiprocessing_context='spawn'.*'forkserver'.*device=None \(or 'cpu'\).*"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path_factory.mktemp("workers") / "ckpt")


@pytest.fixture
def fake_cuda(monkeypatch):
    """Adapters built with device="cuda" pass the device check; kornia's eager loading is skipped."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(handaug.synth_to_real.SynthToReal, "generators", lambda self, device="cpu": [])


def image_hwc(size=16):
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def call_albumentations(ckpt, p=1.0):
    return A.Compose([albu_adapter.SynthToReal(ckpt, p=p, device="cuda")])(image=image_hwc())


def call_torchvision(ckpt, p=1.0):
    return tv_adapter.SynthToReal(ckpt, p=p, device="cuda")({"image": tv_tensors.Image(torch.rand(3, 16, 16))})


def call_kornia(ckpt, p=1.0):
    return kornia_adapter.SynthToReal(ckpt, p=p, device="cuda")(torch.rand(2, 3, 16, 16))


CALLS = {"albumentations": call_albumentations, "torchvision": call_torchvision, "kornia": call_kornia}


# ----------------------------------------------------------------------------- simulated bad fork
@pytest.mark.parametrize("library", sorted(CALLS))
@pytest.mark.parametrize("p", [1.0, 0.0])
def test_bad_fork_raises_one_handaug_error_naming_the_ways_that_work(ckpt, fake_cuda, monkeypatch, library, p):
    """Whatever p decides: CUDA in a bad fork is refused at every call, not by chance."""
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    with pytest.raises(CUDAInForkedProcessError, match=rf"handaug\.integrations\.{library}\.SynthToReal\(device='cuda'\) "
                       rf"cannot run on CUDA in a forked process: .*{WAYS_THAT_WORK}") as caught:  # fmt: skip
        CALLS[library](ckpt, p)
    assert isinstance(caught.value, RuntimeError)
    assert "\n" not in str(caught.value)
    batched = "call this augmentation on the collated batch" if library == "kornia" else "defer=True"
    assert batched in str(caught.value) and "SynthToRealCallback" in str(caught.value)


def test_deferred_adapters_and_cpu_devices_pass_in_a_bad_fork(ckpt, monkeypatch):
    """The guard refuses CUDA only: a CPU adapter works in a bad fork, and defer=True never runs the generator."""
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    out = A.Compose([albu_adapter.SynthToReal(ckpt, device="cpu", precision="fp32")])(image=image_hwc())
    assert out["image"].shape == (16, 16, 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = A.Compose([albu_adapter.SynthToReal(ckpt, device="cuda", defer=True)])(image=image_hwc())
    assert np.array_equal(out["image"], image_hwc()) and out["synth_to_real"] == 0
    sample = {"image": tv_tensors.Image(torch.rand(3, 16, 16))}
    out = tv_adapter.SynthToReal(ckpt, device="cuda", defer=True)(sample)
    assert out["image"] is sample["image"] and out["synth_to_real"] == 0


def test_guard_follows_the_process_not_the_object():
    """Built here or unpickled here (what spawn and forkserver workers do): allowed; inherited from
    another process id (what a forked child sees): refused. Never for a CPU or absent device."""
    guard = ForkGuard("X", "cuda", "the batched path")
    guard.check()
    copy = pickle.loads(pickle.dumps(guard))
    copy.check()
    assert copy.pid == os.getpid()
    guard.pid = os.getpid() + 1  # as if built in the parent of this process
    with pytest.raises(CUDAInForkedProcessError, match=r"X\(device='cuda'\) cannot run on CUDA in a forked process: "):
        guard.check()
    pickle.loads(pickle.dumps(guard)).check()  # re-pickled in this process: its own
    for device in (None, "cpu"):
        cpu = ForkGuard("X", device, "the batched path")
        cpu.pid = os.getpid() + 1
        cpu.check()


# ----------------------------------------------------------------------------- real forked DataLoader workers
class OneCall(Dataset):
    def __init__(self, call):
        self.call = call

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.call()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork start method exists only on POSIX")
@pytest.mark.parametrize("library", sorted(CALLS))
def test_forked_dataloader_worker_gets_the_handaug_error(ckpt, fake_cuda, library):
    """A real DataLoader with forked workers: the worker's error reaches the main process as the same
    handaug class, with the worker named and the ways that work, before CUDA is touched."""
    if library == "albumentations":
        t = A.Compose([albu_adapter.SynthToReal(ckpt, device="cuda")])

        def call():
            return t(image=image_hwc())["image"]
    elif library == "torchvision":
        t = tv_adapter.SynthToReal(ckpt, device="cuda")

        def call():
            return t({"image": tv_tensors.Image(torch.rand(3, 16, 16))})["image"]
    else:
        t = kornia_adapter.SynthToReal(ckpt, device="cuda")

        def call():
            return t(torch.rand(3, 16, 16))

    loader = DataLoader(OneCall(call), batch_size=2, num_workers=2, multiprocessing_context="fork")
    with pytest.raises(CUDAInForkedProcessError, match=rf"DataLoader worker \d, a forked process: .*{WAYS_THAT_WORK}"):
        next(iter(loader))
