"""FID/KID (torchmetrics) and the feature-extractor registry.

The InceptionV3 tests use a randomly initialised network saved under the real file names: they
check where the weights are looked for and that they load, not the published features.
"""

from __future__ import annotations

import pytest
import torch

from handaug.metrics.eval_data import procedural_set
from handaug.metrics.features import INCEPTION_PYTORCH_FID, INCEPTION_TORCH_FIDELITY, RandomConvFeatures, extract_features
from handaug.metrics.fid import fid_kid, fid_kid_from_features
from handaug.registry import create_feature_extractor, get_registry


@pytest.fixture(scope="module")
def hand_sets():
    synthetic = procedural_set("synthetic", 40, 101, image_size=32)
    real = procedural_set("real", 40, 102, image_size=32)
    return synthetic, real


def test_builtin_extractors_are_registered():
    names = get_registry("feature_extractor").names()
    assert "inception" in names and "random_conv" in names
    extractor = create_feature_extractor("random_conv", num_features=16)
    assert extractor.num_features == 16
    out = extractor(torch.rand(3, 3, 40, 24))
    assert out.shape == (3, 16) and out.dtype == torch.float32


def test_random_conv_weights_depend_on_seed_only():
    x = torch.rand(2, 3, 32, 32)
    a, b, c = RandomConvFeatures(seed=3), RandomConvFeatures(seed=3), RandomConvFeatures(seed=4)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    a.train()
    assert not a.training  # fixed features never switch to training mode


def test_random_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_features"):
        RandomConvFeatures(num_features=7)
    with pytest.raises(ValueError, match="images"):
        RandomConvFeatures()(torch.zeros(2, 1, 8, 8))


def test_identical_sets_give_zero_and_different_sets_large(hand_sets):
    synthetic, _ = hand_sets
    inverted = 255 - synthetic.images  # the same hands, clearly different images
    extractor = create_feature_extractor("random_conv")
    same = fid_kid(synthetic.images, synthetic.images, extractor, show_progress=False, kid_subsets=50)
    different = fid_kid(synthetic.images, inverted, extractor, show_progress=False, kid_subsets=50)
    assert abs(same.fid) < 1e-6
    assert different.fid > 1.0
    assert abs(same.kid_mean) < 0.02 * different.kid_mean
    assert different.kid_mean > 10 * different.kid_std > 0
    assert (same.n_real, same.n_fake) == (40, 40)


def test_synthetic_and_real_styles_are_apart(hand_sets):
    synthetic, real = hand_sets
    extractor = create_feature_extractor("random_conv")
    result = fid_kid(real.images, synthetic.images, extractor, show_progress=False)
    assert result.fid > 0.05 and result.kid_mean > 0


def test_fid_of_similar_sets_lies_between(hand_sets):
    synthetic, real = hand_sets
    other_real = procedural_set("real", 40, 103, image_size=32)
    extractor = create_feature_extractor("random_conv")
    real_features = extract_features(extractor, real.images, show_progress=False)
    near = fid_kid_from_features(real_features, extract_features(extractor, other_real.images, show_progress=False))
    far = fid_kid_from_features(real_features, extract_features(extractor, synthetic.images, show_progress=False))
    assert 0 < near.fid < far.fid
    assert near.kid_mean < far.kid_mean


def test_kid_is_seeded_and_leaves_global_rng_alone():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g) + 0.5
    state = torch.get_rng_state()
    first = fid_kid_from_features(a, b, kid_subsets=10, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    again = fid_kid_from_features(a, b, kid_subsets=10, seed=5)
    other = fid_kid_from_features(a, b, kid_subsets=10, seed=6)
    assert first == again
    assert first.kid_mean != other.kid_mean
    # the subset size drops to half of the smaller set when 1000 does not fit, so subsets differ
    assert first.kid_subset_size == 15 and first.kid_std > 0


def test_fid_kid_rejects_bad_features():
    with pytest.raises(ValueError, match="at least 2"):
        fid_kid_from_features(torch.zeros(1, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="real_features have 4 features per image but fake_features 3"):
        fid_kid_from_features(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match="real_features must be a tensor of shape"):
        fid_kid_from_features(torch.zeros(5), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="kid_subsets"):
        fid_kid_from_features(torch.randn(5, 4), torch.randn(5, 4), kid_subsets=0)


def test_inception_missing_weights_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        create_feature_extractor("inception")
    message = str(err.value)
    assert INCEPTION_TORCH_FIDELITY.filename in message and INCEPTION_PYTORCH_FID.filename in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "--inception-weights" in message
    with pytest.raises(FileNotFoundError, match="weights '.*nope.pth' does not exist"):
        create_feature_extractor("inception", weights=str(tmp_path / "nope.pth"))


def _random_inception_state():
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_inception_loads_pytorch_fid_file_from_hub_cache(tmp_path, monkeypatch):
    """A state dict saved under pytorch-fid's name in the hub cache is found and loaded (random weights here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    state = _random_inception_state()
    torch.save(state, folder / INCEPTION_PYTORCH_FID.filename)
    extractor = create_feature_extractor("inception")
    assert extractor.num_features == 2048
    assert extractor.weights_path == folder / INCEPTION_PYTORCH_FID.filename
    loaded = extractor.net.state_dict()
    assert torch.equal(loaded["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"])
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    features = extract_features(extractor, images, show_progress=False)
    assert features.shape == (2, 2048)
    # uint8 images and their float versions give the same features (rounded back exactly)
    assert torch.allclose(extractor(images.float() / 255), features.float(), atol=1e-5)
    small = create_feature_extractor("inception", weights=str(folder / INCEPTION_PYTORCH_FID.filename), feature_layer=64)
    assert small(torch.rand(1, 3, 16, 16)).shape == (1, 64)


def test_inception_rejects_wrong_files(tmp_path):
    wrong_keys = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong_keys)
    with pytest.raises(ValueError, match="not the FID InceptionV3 state dict"):
        create_feature_extractor("inception", weights=str(wrong_keys))
    pickled = tmp_path / "pickled.pth"
    torch.save({"fc.weight": object()}, pickled)
    with pytest.raises(ValueError, match="could not be read as a state dict"):
        create_feature_extractor("inception", weights=str(pickled))
    with pytest.raises(ValueError, match="feature_layer"):
        create_feature_extractor("inception", feature_layer=100)
