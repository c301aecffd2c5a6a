"""handaug.integrations.lightning.SynthToRealCallback in a real (CPU) Lightning fit: the training step
sees the images the per-sample pipeline would have given, translated in one call per batch, with
keypoints and masks untouched; and the callable form for on_after_batch_transfer."""

from __future__ import annotations

import albumentations as A
import lightning as L
import numpy as np
import pytest
import torch
from tiny import tiny_pool, tiny_trainer
from torch.utils.data import DataLoader, Dataset

import handaug
from handaug.data.procedural import ProceduralHands
from handaug.integrations import albumentations as albu_adapter
from handaug.integrations import kornia as kornia_adapter
from handaug.integrations.batch import translate_batch
from handaug.integrations.lightning import SynthToRealCallback

N = 8


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return tiny_pool(tmp_path_factory.mktemp("lightning"))


def pipeline(pool, defer):
    return A.Compose([A.Affine(rotate=(-40, 40), p=1.0),
                      albu_adapter.SynthToReal(pool, p=0.5, precision="fp32", hand_mask_key="mask", defer=defer)],
                     keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))  # fmt: skip


class Hands(Dataset):
    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __len__(self):
        return N

    def __getitem__(self, i):
        s = ProceduralHands("synthetic", image_size=32, length=N, seed=2)[i]
        self.pipeline.set_random_seed(i)
        out = self.pipeline(image=s["image"], mask=s["mask"], keypoints=s["keypoints_2d"])
        return {k: v for k, v in out.items() if k in ("image", "mask", "keypoints", "synth_to_real")}


class Recorder(L.LightningModule):
    """A model that only records the batches its training_step sees."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return (self.weight**2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_callback_in_a_fit_translates_each_training_batch_like_the_per_sample_path(pool, tmp_path):
    per_sample = Hands(pipeline(pool, defer=False))
    expected = torch.utils.data.default_collate([per_sample[i] for i in range(N)])
    deferred = pipeline(pool, defer=True)
    model = Recorder()
    callback = SynthToRealCallback(deferred.transforms[-1], image_key="image", mask_key="mask", channels="last")
    tiny_trainer(tmp_path, callbacks=[callback]).fit(model, DataLoader(Hands(deferred), batch_size=4))
    seen = {k: torch.cat([b[k] for b in model.seen]) for k in model.seen[0]}
    assert {-1, 0, 1} <= set(seen["synth_to_real"].tolist())
    assert torch.equal(seen["keypoints"], expected["keypoints"])
    assert torch.equal(seen["mask"], expected["mask"])
    diff = (seen["image"].int() - expected["image"].int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3  # batch-size rounding at most
    assert (seen["image"] != torch.stack([torch.from_numpy(Hands(deferred)[i]["image"]) for i in range(N)])).any()


def test_callable_form_returns_a_new_batch_of_the_same_type(pool):
    """For on_after_batch_transfer (any batch type): the batch it was given is left as it was."""
    s2r = handaug.SynthToReal(pool, precision="fp32")
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    decisions = torch.tensor([1, -1, 0])
    batch = (images, decisions, "label")
    out = SynthToRealCallback(s2r, image_key=0, decision_key=1)(batch)
    assert isinstance(out, tuple) and out[1] is decisions and out[2] == "label" and batch[0] is images
    assert torch.equal(out[0], translate_batch(s2r, images, decisions))
    listed = SynthToRealCallback(s2r, image_key=0, decision_key=1)([images, decisions])
    assert isinstance(listed, list) and torch.equal(listed[0], out[0])


def test_decisions_drawn_on_the_batch_by_the_core_or_kornia(pool):
    images = torch.rand(4, 3, 16, 16)
    core = handaug.SynthToReal(pool, p=1.0, seed=3, precision="fp32")
    out = SynthToRealCallback(core, decision_key=None)({"image": images})
    assert torch.equal(out["image"], handaug.SynthToReal(pool, p=1.0, seed=3, precision="fp32")(images))
    aug = kornia_adapter.SynthToReal(pool, p=0.5, precision="fp32")
    torch.manual_seed(0)
    got = SynthToRealCallback(aug, decision_key=None)({"image": images})["image"]
    chosen = aug._params["batch_prob"] > 0.5
    decisions = torch.where(chosen, aug._params["pool_index"], torch.full_like(aug._params["pool_index"], -1))
    assert torch.equal(got[~chosen], images[~chosen])
    torch.testing.assert_close(got, translate_batch(aug, images, decisions), atol=1e-6, rtol=0)


def test_bad_arguments_and_batches_name_what_is_wrong(pool):
    adapter = albu_adapter.SynthToReal(pool, defer=True)
    with pytest.raises(ValueError, match=r"decision_key=None draws the decisions on the batch, which "
                       r"handaug\.integrations\.albumentations\.SynthToReal cannot"):  # fmt: skip
        SynthToRealCallback(adapter, decision_key=None)
    with pytest.raises(ValueError, match="s2r must be a handaug.SynthToReal"):
        SynthToRealCallback("runs/export")
    with pytest.raises(ValueError, match="image_key must be a dict key"):
        SynthToRealCallback(adapter, image_key=1.5)
    with pytest.raises(ValueError, match=r"decision_key must be a dict key \(str\) or a list index \(int\), got True"):
        SynthToRealCallback(adapter, image_key=0, decision_key=True)
    numpy_index = SynthToRealCallback(adapter, image_key=np.int64(0), decision_key=np.int32(1))  # handaug.arguments' rule
    assert (numpy_index.image_key, numpy_index.decision_key) == (0, 1) and type(numpy_index.image_key) is int
    callback = SynthToRealCallback(adapter, mask_key="hand")
    batch = {"image": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "synth_to_real": torch.tensor([0, 0])}
    with pytest.raises(ValueError, match=r"mask_key='hand' is not in the batch \(keys \['image', 'synth_to_real'\]\)"):
        callback(batch)
    with pytest.raises(ValueError, match="must be a dict or a list, got tuple.*batch = callback\\(batch\\)"):
        callback.on_train_batch_start(None, None, (batch["image"],), 0)
    assert np.array_equal(batch["image"].numpy(), np.zeros((2, 3, 8, 8), np.uint8))
