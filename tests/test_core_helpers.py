"""handaug.fitting and handaug.safetensors_files: the loop and the file layout the formats and measures share."""

import hashlib
import json
import math

import pytest
import safetensors.torch
import torch
from torch import nn

from handaug.atomic_files import json_bytes
from handaug.fitting import fit, predict, random_batches, shuffled_batches
from handaug.safetensors_files import (
    MAX_HEADER_BYTES,
    json_ready,
    read_config_file,
    safetensors_bytes,
    safetensors_metadata,
    write_tensor_directory,
    write_tensor_file,
)


def _data():
    torch.manual_seed(0)
    return torch.randn(10, 4), torch.randint(0, 3, (10,))


def test_fit_with_shuffled_batches_is_the_hand_written_loop():
    x, y = _data()

    def run(with_helper: bool):
        torch.manual_seed(1)
        model = nn.Linear(4, 3)
        rng = torch.Generator().manual_seed(2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3 * math.ceil(10 / 4))

        def loss(pick):
            noise = torch.rand(len(pick), 1, generator=rng)  # an augmentation drawn from the same generator
            return nn.functional.cross_entropy(model(x[pick] + noise), y[pick])

        if with_helper:
            return fit(model, shuffled_batches(10, 4, 3, rng), loss, optimizer, scheduler), model
        history = []
        model.train()
        for _ in range(3):
            order = torch.randperm(10, generator=rng)
            for start in range(0, 10, 4):
                value = loss(order[start : start + 4])
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                scheduler.step()
                history.append(float(value.detach()))
        return history, model.eval()

    (a, model_a), (b, model_b) = run(True), run(False)
    assert a == b and len(a) == 9 and not model_a.training
    assert all(torch.equal(p, q) for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values()))


def test_random_batches_and_predict():
    rng, again = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    picks = list(random_batches(5, 8, 2, rng))
    assert [tuple(p.shape) for p in picks] == [(5,), (5,)]
    assert torch.equal(picks[0], torch.randint(5, (5,), generator=again))
    model = nn.Linear(4, 2)
    x, _ = _data()
    assert torch.equal(predict(model, x, batch_size=3, prepare=lambda b: b * 2), model(x * 2).detach())
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        next(shuffled_batches(4, 0, 1, rng))


def test_json_ready():
    assert json_ready({"a": (1, 2)}, "training") == {"a": [1, 2]}
    with pytest.raises(ValueError, match="training must hold only JSON values"):
        json_ready({"a": object()}, "training")
    assert json_ready({"a": float("nan")}, "x") is not None
    with pytest.raises(ValueError, match="x must hold only finite JSON values"):
        json_ready({"a": float("nan")}, "x", finite=True)


def test_the_two_layouts_are_the_formats_bytes(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2, dtype=torch.int64)}
    config = {"format": "handaug.test", "network": {"width": 2}}
    path = write_tensor_directory(tmp_path / "d", state, config, format="handaug.test", weights_file="w.safetensors", config_file="c.json")
    weights = (path / "w.safetensors").read_bytes()
    assert weights == safetensors.torch.save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "handaug.test"})
    assert (path / "c.json").read_bytes() == json_bytes({**config, "weights_sha256": hashlib.sha256(weights).hexdigest()})
    assert read_config_file(path / "c.json", "c")["network"] == {"width": 2}
    data = write_tensor_file(tmp_path / "f.safetensors", state, "key", config)
    assert data == (tmp_path / "f.safetensors").read_bytes() == safetensors_bytes(state, {"key": json.dumps(config)})
    assert json.loads(safetensors_metadata(data)["key"]) == config


def test_metadata_reading_is_bounded():
    with pytest.raises(ValueError, match="its header is not a JSON object"):
        safetensors_metadata(b"not a safetensors file")
    with pytest.raises(ValueError, match="its header is not a JSON object"):
        safetensors_metadata((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{}")
    header = json.dumps({"__metadata__": {"k": 1}}).encode()
    with pytest.raises(ValueError, match="not an object of strings"):
        safetensors_metadata(len(header).to_bytes(8, "little") + header)
