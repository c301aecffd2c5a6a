"""Image feature extractors for FID/KID: the standard FID InceptionV3 and a tiny random CNN for tests.

Every extractor follows the ``handaug_register_feature_extractors`` contract: ``forward`` maps a
float tensor ``(B, 3, H, W)`` with RGB values in ``[0, 1]`` (any H, W) to float32 features
``(B, d)``, and the module has an integer attribute ``num_features`` (= d).

The FID InceptionV3 (:class:`InceptionFeatures`) is torchmetrics' ``NoTrainInceptionV3``, i.e.
torch-fidelity's port of the TensorFlow graph ``inception-2015-12-05`` that FID was defined with.
torchmetrics looks for its weights as ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``
(downloaded by torch-fidelity from its GitHub release). pytorch-fid, which the H-GAN authors used,
ships the same network as ``pt_inception-2015-12-05-6726825d.pth``, whose state dict has the
same keys; either file works. handaug never downloads them: it reads them from the hub cache or
from the path given as ``weights``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from handaug.metrics.progress import batches, progress
from handaug.pretrained import PretrainedFile, hub_checkpoint_dir, load_state_dict_file

#: The file torchmetrics / torch-fidelity load (``torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3``).
INCEPTION_TORCH_FIDELITY = PretrainedFile(
    filename="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    description="FID InceptionV3 weights (torch-fidelity / torchmetrics)",
)
#: The same network as published by pytorch-fid (what the H-GAN paper's FID used).
INCEPTION_PYTORCH_FID = PretrainedFile(
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    description="FID InceptionV3 weights (pytorch-fid)",
)
INCEPTION_FILES: tuple[PretrainedFile, ...] = (INCEPTION_TORCH_FIDELITY, INCEPTION_PYTORCH_FID)
INCEPTION_LAYERS: tuple[int, ...] = (64, 192, 768, 2048)


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.dtype.is_floating_point:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a float tensor of shape (B, 3, H, W) with values in [0, 1], got {shape}")


def find_inception_weights(weights: str | os.PathLike[str] | None = None) -> Path:
    """The InceptionV3 weights file to use: ``weights`` if given, else the first of
    :data:`INCEPTION_FILES` found in the torch hub cache.

    Raises:
        FileNotFoundError: ``weights`` does not exist, or neither file is in the hub cache; the
            message names the files, the folder and where to get them.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights {str(path)!r} does not exist: expected the FID InceptionV3 weights file "
                f"{INCEPTION_TORCH_FIDELITY.filename} (torch-fidelity) or {INCEPTION_PYTORCH_FID.filename} (pytorch-fid)"
            )
        return path
    folder = hub_checkpoint_dir()
    for spec in INCEPTION_FILES:
        if (folder / spec.filename).is_file():
            return folder / spec.filename
    options = " or ".join(f"{spec.filename} ({spec.url})" for spec in INCEPTION_FILES)
    raise FileNotFoundError(
        f"FID InceptionV3 weights are not available: neither {INCEPTION_FILES[0].filename} nor "
        f"{INCEPTION_FILES[1].filename} is in {folder}. Put {options} there (or set TORCH_HOME to a folder "
        f"whose hub/checkpoints/ holds one), or pass the file as weights='/path/to/file.pth' "
        f"(handaug-eval --inception-weights PATH). Without them, --features random_conv gives numbers "
        f"that compare checkpoints with each other but are not FID/KID values."
    )


class InceptionFeatures(nn.Module):
    """The FID InceptionV3 (torchmetrics' ``NoTrainInceptionV3``): ``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, d)``.

    Args:
        weights: path to the weights file; ``None`` looks in the torch hub cache (see
            :func:`find_inception_weights`). The file is read with
            ``torch.load(weights_only=True)`` (anything but tensors is rejected); torch-fidelity,
            which unpickles without that restriction, only sees a private copy of the tensors.
        feature_layer: which activations: 2048 (pool3, the FID standard), 768, 192 or 64.
        antialias: antialiased bilinear resize to 299×299 (torchmetrics' default); ``False`` uses
            torch-fidelity's TensorFlow-1 compatible resize.

    Inputs are rounded to uint8 (``round(255 x)``) as the network expects; images that came from
    uint8 files therefore give exactly the features of their files.

    Raises:
        ImportError: torch-fidelity is not installed (``pip install 'handaug[eval]'``).
        FileNotFoundError: the weights are missing (the message says which file to put where).
        ValueError: an unknown ``feature_layer``, or a file that is not the InceptionV3 state dict.
    """

    def __init__(self, weights: str | os.PathLike[str] | None = None, feature_layer: int = 2048, antialias: bool = True) -> None:
        super().__init__()
        if feature_layer not in INCEPTION_LAYERS:
            raise ValueError(f"feature_layer must be one of {INCEPTION_LAYERS}, got {feature_layer!r}")
        try:  # deferred: torchmetrics is the [eval] extra
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as err:  # pragma: no cover - torchmetrics is a core dependency
            raise ImportError(f"the inception feature extractor needs torchmetrics: {err}") from err
        if not _TORCH_FIDELITY_AVAILABLE:
            raise ImportError(
                "the inception feature extractor needs torch-fidelity (torchmetrics' InceptionV3): "
                "pip install 'handaug[eval]' (or pip install torch-fidelity)"
            )
        path = find_inception_weights(weights)
        state = load_state_dict_file(path)  # weights only: refuses pickled objects other than tensors
        # torch-fidelity unpickles its weights file in full (weights_only is off there). Hand it a
        # private copy holding only the tensors validated above, never the user's file itself.
        with tempfile.TemporaryDirectory(prefix="handaug-inception-") as tmp:
            private = os.path.join(tmp, "inception.pth")
            torch.save(state, private)
            try:
                self.net = NoTrainInceptionV3(
                    name="inception-v3-compat",
                    features_list=[str(feature_layer)],
                    feature_extractor_weights_path=private,
                    antialias=antialias,
                )
            except RuntimeError as err:
                raise ValueError(f"weights {str(path)!r} are not the FID InceptionV3 state dict: {err}") from err
        self.num_features = int(feature_layer)
        self.weights_path = path

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        as_uint8 = images.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return self.net(as_uint8).float()


class RandomConvFeatures(nn.Module):
    """A tiny CNN with fixed random weights: ``(B, 3, H, W)`` in ``[0, 1]`` → ``(B, num_features)``.

    For tests and for machines without the InceptionV3 weights. Three stride-2 3×3 convolutions
    with ReLU, then the per-channel mean and standard deviation over the image. The weights depend
    on ``seed`` only, so the same ``seed`` gives the same features in every process.

    Its distances are NOT FID/KID values: they rank checkpoints evaluated with the same extractor,
    image size and seed against each other, and cannot be compared with published FID/KID numbers.

    Args:
        num_features: output size (even; half means, half standard deviations).
        width: channels of the hidden layers.
        seed: seed of the random weights.
    """

    def __init__(self, num_features: int = 64, width: int = 32, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 2 or num_features % 2:
            raise ValueError(f"num_features must be an even integer >= 2, got {num_features!r}")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        channels = num_features // 2
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        rng = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Conv2d):
                    fan_in = layer.weight[0].numel()
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=rng) * (2.0 / fan_in) ** 0.5)
                    layer.bias.zero_()
        self.requires_grad_(False)
        self.eval()
        self.num_features = int(num_features)

    def train(self, mode: bool = True) -> RandomConvFeatures:
        return super().train(False)  # fixed features: never in training mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        maps = self.body(images.float().mul(2.0).sub(1.0)).flatten(2)
        return torch.cat([maps.mean(dim=2), maps.std(dim=2, unbiased=False)], dim=1)


def as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` → float32 ``[0, 1]``; float images are returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


@torch.no_grad()
def extract_features(
    extractor: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 50,
    device: str | torch.device | None = None,
    show_progress: bool = True,
    desc: str = "features",
) -> torch.Tensor:
    """Features of ``images`` ``(N, 3, H, W)`` (uint8 or float in ``[0, 1]``) → ``(N, d)`` float64 on the CPU.

    ``extractor`` runs in eval mode on ``device`` (default: where its parameters are).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (N, 3, H, W), got {shape}")
    if device is None:
        param = next(iter(extractor.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    extractor = extractor.eval().to(device)
    chunks = []
    parts = batches(images.shape[0], batch_size)
    for part in progress(parts, desc, total=len(parts), enabled=show_progress):
        chunks.append(extractor(as_unit_float(images[part]).to(device)).double().cpu())
    features = torch.cat(chunks) if chunks else torch.zeros(0, int(getattr(extractor, "num_features", 0)), dtype=torch.float64)
    if features.ndim != 2:
        raise ValueError(f"the feature extractor returned shape {tuple(features.shape)}, expected (N, d)")
    return features
