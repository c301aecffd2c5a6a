"""Table I exactly as the H-GAN reference code measures it (``handaug-eval fid --protocol hgan``).

The public H-GAN code (``sergiuoprea/hgan``, ``code/``) tests a generator like this; every step
is reproduced here, in order:

1. **Test images**: the first 2,000 of each dataset's shuffled frame list (its fixed split, see
   :mod:`handaug.data.readers.split`), SynthHands ``*_noobject`` sequences only. The background
   outside the hand mask is white (SynthHands: pixels of exactly the chroma green; RealHands:
   the refined mask).
2. **Centroid crop at native resolution** (:func:`centroid_crop`): a 256 × 256 window around
   the mask's centroid, moved 20 px right and 100 px up, on the frame padded with white
   (the mask with 0) so that the window never leaves it. No resizing.
3. **Raw generator output**: the synthetic crops go through the generator as they are; the
   translation is *not* composited over the input with the mask.
4. **Saved as JPEG and read back**: real crops and translations are denormalised and converted
   as the reference does (:func:`reference_quantize`: ``(y + 0.5/(0.5+1e-7)) × (0.5+1e-7)``,
   times 255, truncated: levels below 128 of a real image lose one) and written as JPEG with
   Pillow's default settings (quality 75, 4:2:0 chroma subsampling).
5. **torch-fidelity** reads the two folders back and computes FID and KID (and the Inception
   Score of the translations) with its InceptionV3 (``inception-v3-compat``, pool3 features),
   KID with 100 subsets of ``n // 10`` images (200 for 2,000 images), its polynomial kernel of
   degree 3, and its seed (2020). The translations are torch-fidelity's first input, the real
   images its second, as in the reference.

What cannot be reproduced: the reference shuffles its frame lists with an unseeded
``random.shuffle``, so its exact 2,000 test frames are unknown (handaug shuffles with a seed),
and it pins torch-fidelity 0.2.0 (FID through ``scipy.linalg.sqrtm``; later versions use
eigenvalues, equal to float precision).

Without the InceptionV3 weights (no download here), ``features="random_conv"`` (or any
registered feature extractor) runs the whole protocol through torch-fidelity with that network:
for tests and for ranking runs, never for comparing with the paper.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from handaug.arguments import check_int, is_integer
from handaug.atomic_files import write_bytes_atomically
from handaug.data.crops import REFERENCE_CROP_OFFSET, REFERENCE_CROP_SIZE, centroid_crop
from handaug.data.sources import parse_source
from handaug.metrics.eval_data import EvalSet, apply_background, procedural_set, role_seed
from handaug.metrics.features import find_inception_weights
from handaug.metrics.fid import fid_kid_of_folders
from handaug.metrics.progress import batches, progress
from handaug.metrics.report import Table, file_slug, format_mean_std, format_number
from handaug.metrics.translators import PathLike, checkpoint_translator
from handaug.registry import create_dataset, create_feature_extractor

__all__ = [
    "HganProtocol",
    "centroid_crop",
    "protocol_images",
    "raw_translator",
    "reference_kid_subset_size",
    "reference_model_range",
    "reference_quantize",
    "run_hgan_protocol",
    "translate_raw",
    "write_jpeg_folder",
]

#: Pillow's default JPEG quality, which the reference's ``image.save(path, "JPEG")`` uses.
REFERENCE_JPEG_QUALITY = 75
REFERENCE_TEST_IMAGES = 2000
REFERENCE_KID_SUBSETS = 100
#: The reference's normalisation (mean = std = 0.5) and the ``1e-7`` its ``Denormalize`` adds to std.
_NORM = 0.5
_DENORM_EPS = 1e-7

#: Options under which each built-in reader gives the reference's test frames (``split="test"`` is added).
REFERENCE_READER_KWARGS: dict[str, dict[str, Any]] = {
    "synthhands": {"noobject_only": True, "mask_tolerance": 0},
    "realhands": {},
}

#: A raw translation: uint8 crops ``(B, 3, S, S)`` → generator output ``(B, 3, S, S)`` float in ``[-1, 1]``.
RawTranslator = Callable[[torch.Tensor], torch.Tensor]
_IMAGE_NAME = re.compile(r"\d{6}\.jpg")


def reference_kid_subset_size(n_images: int) -> int:
    """The reference's KID subset size for ``n_images`` test images: ``n_images // 10`` (200 for 2,000)."""
    return int(n_images) // 10


# ------------------------------------------------------------------------------ pixels and files


def reference_quantize(model_range: torch.Tensor) -> torch.Tensor:
    """Images in the networks' range ``[-1, 1]`` → uint8, exactly as the reference saves them.

    The reference undoes its normalisation with ``std + 1e-7`` in place of ``std`` and converts
    with torchvision's ``ToPILImage`` (multiply by 255, truncate). Both are reproduced in float32:
    a real image read from disk loses one level wherever it is below about 128, and a
    translation's levels are truncated rather than rounded.

    Args:
        model_range: float ``(..., 3, H, W)`` (any float dtype) in ``[-1, 1]``.

    Returns:
        uint8 tensor of the same shape.
    """
    if not isinstance(model_range, torch.Tensor) or not model_range.dtype.is_floating_point:
        raise ValueError(f"model_range must be a float tensor, got {type(model_range).__name__}")
    y = model_range.float()
    std_inv = 1.0 / (torch.tensor(_NORM) + _DENORM_EPS)
    mean_inv = -torch.tensor(_NORM) * std_inv
    unit = (y - mean_inv) / std_inv
    return unit.mul(255.0).clamp_(0.0, 255.0).to(torch.uint8)


def reference_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(..., 3, H, W)`` → ``[-1, 1]`` float32 as the reference's data pipeline makes them.

    ``ToTensor`` divides by 255 in float64 and stores float32; ``Normalize`` subtracts and divides by 0.5.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError("images must be a uint8 tensor")
    unit = (images.double() / 255.0).float()
    return (unit - _NORM) / _NORM


def write_jpeg_folder(images: torch.Tensor, folder: PathLike, quality: int = REFERENCE_JPEG_QUALITY) -> Path:
    """Write ``images`` ``(N, 3, H, W)`` uint8 as ``000000.jpg``, ``000001.jpg``, ... into a new ``folder``.

    The files are written into a hidden temporary folder beside ``folder``, which is renamed to
    ``folder`` when all are written: a folder of that name is always complete. An earlier
    ``folder`` holding only such numbered JPEGs is replaced; one holding anything else is refused.

    Raises:
        ValueError: images of the wrong shape or dtype, or ``folder`` holds other files.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 tensor of shape (N, 3, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    folder = Path(folder)
    if folder.exists():
        others = [p.name for p in folder.iterdir()] if folder.is_dir() else [folder.name]
        others = [name for name in others if not _IMAGE_NAME.fullmatch(name)]
        if others:
            raise ValueError(
                f"folder {str(folder)!r} exists and holds files handaug-eval did not write ({', '.join(sorted(others)[:3])}); "
                "choose another --out"
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{secrets.token_hex(8)}.tmp"
    staging.mkdir()
    try:
        pixels = images.permute(0, 2, 3, 1).contiguous().numpy()
        for i, array in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
            (staging / f"{i:06d}.jpg").write_bytes(buffer.getvalue())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder


# ------------------------------------------------------------------------------ data


def raw_translator(ckpt: PathLike, device: str | torch.device | None = None) -> RawTranslator:
    """The raw output of the generator in checkpoint ``ckpt``: uint8 crops → ``[-1, 1]`` float32, not composited.

    No rounding to uint8 in between (:func:`handaug.metrics.translators.checkpoint_translator` with
    ``mask_mode="none"``, ``output="model_range"``).
    """
    return checkpoint_translator(ckpt, mask_mode="none", output="model_range", device=device)


@dataclass
class HganProtocol:
    """Settings of the reference protocol; the defaults are the reference's.

    Attributes:
        n_images: test images of each domain (reference: 2,000).
        crop_size, crop_offset: the centroid crop (256, (20, -100)).
        jpeg_quality: quality of the saved images (Pillow's default, 75).
        kid_subsets: KID subsets (torch-fidelity's default, 100); their size is ``n_images // 10``.
        features: ``"inception"`` (torch-fidelity's InceptionV3, needs its weights) or another
            registered feature extractor (``"random_conv"``: tests only).
        inception_weights: path to the InceptionV3 weights (default: the torch hub cache).
        procedural_size: side of the procedural hands when a domain's source is ``"procedural"``.
        background: ``"white"`` (the reference), ``"black"`` or ``"keep"`` outside the hand mask.
        seed: seed of the split shuffle and of the procedural hands.
        device, batch_size: where and how many crops the generator translates at once.
    """

    n_images: int = REFERENCE_TEST_IMAGES
    crop_size: int = REFERENCE_CROP_SIZE
    crop_offset: tuple[int, int] = REFERENCE_CROP_OFFSET
    jpeg_quality: int = REFERENCE_JPEG_QUALITY
    kid_subsets: int = REFERENCE_KID_SUBSETS
    features: str = "inception"
    feature_kwargs: dict[str, Any] = field(default_factory=dict)
    inception_weights: str | None = None
    procedural_size: int = 256
    background: str = "white"
    synthetic: str = "procedural"
    real: str = "procedural"
    synthetic_masks: str | None = None
    real_masks: str | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 32
    show_progress: bool = True

    @property
    def kid_subset_size(self) -> int:
        return reference_kid_subset_size(self.n_images)

    def check(self) -> None:
        """Raise a ``ValueError`` naming the setting that cannot work (numpy integers become ``int``)."""
        if not is_integer(self.n_images) or self.n_images < 20:
            raise ValueError(
                f"the H-GAN protocol needs at least 20 test images per domain (KID subsets of n // 10 >= 2 images), got {self.n_images!r}"
            )
        self.n_images = int(self.n_images)
        if len(tuple(self.crop_offset)) != 2:
            raise ValueError(f"crop_offset must be (dx, dy), got {self.crop_offset!r}")
        self.jpeg_quality = check_int(self.jpeg_quality, "jpeg_quality", 1, 100)


def _reader_kwargs(name: str, settings: HganProtocol, masks: str | None) -> dict[str, Any]:
    if name == "folder":
        return {"mask_pattern": masks} if masks is not None else {}
    if masks is not None:
        raise ValueError(f"mask patterns apply to folder sources, not to the {name!r} reader")
    kwargs = dict(REFERENCE_READER_KWARGS.get(name, {}))
    if name in REFERENCE_READER_KWARGS:
        kwargs.update(split="test", test_size=settings.n_images, split_seed=settings.seed)
    return kwargs


def protocol_images(domain: str, settings: HganProtocol) -> EvalSet:
    """The ``n_images`` centroid crops of ``domain`` (``"synthetic"`` or ``"real"``), with the background applied first.

    ``synthhands:ROOT`` / ``realhands:ROOT`` give their reference test split (``*_noobject``,
    exact chroma key, first ``n_images`` of the seeded shuffle); another dataset or a folder gives
    ``n_images`` frames of a seeded shuffle; ``"procedural"`` renders hands of ``procedural_size``.

    Raises:
        ValueError: the source has fewer than ``n_images`` frames, or a frame has no (or an empty) mask.
    """
    source = settings.synthetic if domain == "synthetic" else settings.real
    masks = settings.synthetic_masks if domain == "synthetic" else settings.real_masks
    spec = parse_source(source, domain)
    n = settings.n_images
    if spec.name == "procedural":
        full = procedural_set(domain, n, role_seed(settings.seed, f"fid_{domain}"), image_size=settings.procedural_size,
                              background=settings.background, show_progress=settings.show_progress, name=f"{domain} (procedural)")
        frames = ((img.permute(1, 2, 0).numpy(), m[0].numpy().astype(np.uint8) * 255, f"procedural hand {i}")
                  for i, (img, m) in enumerate(zip(full.images, full.masks)))
    else:
        dataset = create_dataset(spec.name, root=spec.root, **_reader_kwargs(spec.name, settings, masks))
        if len(dataset) < n:
            raise ValueError(
                f"the {domain} source {source!r} has {len(dataset)} test frames, fewer than the {n} asked for (--fid-images)"
            )
        order = range(n) if spec.name in REFERENCE_READER_KWARGS else np.random.default_rng([settings.seed, 0 if domain == "synthetic" else 1]).permutation(len(dataset))[:n]
        frames = (_frame(dataset, int(i), domain, source, settings.background) for i in order)
    crops, crop_masks = [], []
    for image, mask, name in progress(frames, f"centroid crops ({domain})", total=n, enabled=settings.show_progress):
        try:
            crop, crop_mask = centroid_crop(image, mask, settings.crop_size, settings.crop_offset)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        crops.append(torch.from_numpy(crop).permute(2, 0, 1))
        crop_masks.append(torch.from_numpy(crop_mask > 0)[None])
    return EvalSet(torch.stack(crops), torch.stack(crop_masks), None, f"{domain} ({source})")


def _frame(dataset: Any, index: int, domain: str, source: str, background: str) -> tuple[np.ndarray, np.ndarray, str]:
    item = dataset[index]
    name = f"{domain} frame {item.get('path', index)!s}"
    if "mask" not in item:
        raise ValueError(f"{name} of {source!r} has no hand mask: the centroid crop needs one (give --{domain}-masks for a folder)")
    image = torch.from_numpy(np.ascontiguousarray(item["image"])).permute(2, 0, 1)[None]
    mask = torch.from_numpy(item["mask"] > 0)[None, None]
    image = apply_background(image, mask, background)[0].permute(1, 2, 0).numpy()
    return image, np.where(item["mask"] > 0, 255, 0).astype(np.uint8), name


# ------------------------------------------------------------------------------ the run


def translate_raw(translator: RawTranslator, images: torch.Tensor, batch_size: int, *, show_progress: bool = False, desc: str = "translate") -> torch.Tensor:
    """``images`` ``(N, 3, S, S)`` uint8 through ``translator`` in batches, saved as the reference saves them (uint8)."""
    out = torch.empty_like(images)
    parts = batches(images.shape[0], batch_size)
    for part in progress(parts, desc, total=len(parts), enabled=show_progress):
        raw = translator(images[part])
        if raw.shape != images[part].shape or not raw.dtype.is_floating_point:
            raise ValueError(f"the translator returned {raw.dtype} {tuple(raw.shape)}, expected float {tuple(images[part].shape)}")
        out[part] = reference_quantize(raw.cpu())
    return out


def run_hgan_protocol(
    translators: Mapping[str, PathLike | RawTranslator],
    out: PathLike,
    settings: HganProtocol | None = None,
) -> Table:
    """Table I under the reference protocol for each ``{label: checkpoint path or raw translator}``.

    Writes under ``out``: ``hgan-protocol/real/`` and one folder per row (``synthetic/``, the
    untranslated crops, and one per checkpoint) of numbered JPEGs, ``fid.md`` / ``fid.csv``,
    ``report.md`` and ``results.json``. Returns the table.

    Raises:
        FileNotFoundError: the InceptionV3 weights (the message says which file to put where),
            a checkpoint or a data folder is missing.
        ValueError: bad settings or data (the message names them).
    """
    s = settings or HganProtocol()
    s.check()
    out = Path(out)
    images_dir = out / "hgan-protocol"
    extractor = _feature_extractor(s)  # before any work: a missing weights file stops here
    real = protocol_images("real", s)
    synthetic = protocol_images("synthetic", s)
    real_dir = write_jpeg_folder(reference_quantize(reference_model_range(real.images)), images_dir / "real", s.jpeg_quality)
    rows: dict[str, Path] = {
        "synthetic (no translation)": write_jpeg_folder(
            reference_quantize(reference_model_range(synthetic.images)), images_dir / "synthetic", s.jpeg_quality
        )
    }
    for label, translator in translators.items():
        if isinstance(translator, (str, os.PathLike)):
            translator = raw_translator(translator, s.device)
        generated = translate_raw(translator, synthetic.images, s.batch_size, show_progress=s.show_progress, desc=f"translate ({label})")
        rows[label] = write_jpeg_folder(generated, images_dir / f"generated-{file_slug(label)}", s.jpeg_quality)

    inception = s.features == "inception"
    columns = ["method", "FID ↓", "KID ↓"] + (["IS ↑"] if inception else []) + ["real images", "generated images"]
    table = Table(
        f"Table I, H-GAN reference protocol: FID / KID against real images ({s.features} features, {len(real)} real, "
        f"{len(synthetic)} generated, {s.crop_size} px centroid crops)",
        columns,
    )
    results: dict[str, Any] = {}
    for label, folder in rows.items():
        result = fid_kid_of_folders(
            folder, real_dir, features=extractor, kid_subsets=s.kid_subsets, kid_subset_size=s.kid_subset_size,
            isc=inception, device=s.device, weights=s.inception_weights or s.feature_kwargs.get("weights"),
        )
        results[label] = result.to_dict()
        row = [label, format_number(result.fid, 3), format_mean_std(result.kid_mean, result.kid_std, 4)]
        if inception:
            row.append(format_mean_std(result.isc_mean, result.isc_std, 3))
        table.add_row(row + [result.n_real, result.n_fake])
    table.notes.append(
        f"H-GAN reference protocol: {s.crop_size} px centroid crops at native resolution (offset {tuple(s.crop_offset)}), "
        f"raw generator output (not composited), images saved as JPEG (quality {s.jpeg_quality}) and read back by "
        f"torch-fidelity; KID: mean ± std over {s.kid_subsets} subsets of {s.kid_subset_size} images."
    )
    procedural = [d for d, source in (("synthetic", s.synthetic), ("real", s.real)) if source == "procedural"]
    if procedural:
        table.notes.append(
            f"The {' and '.join(procedural)} images are procedural hands rendered at {s.procedural_size} px "
            "(--image-size), not a dataset's frames."
        )
    if not inception:
        table.notes.append(
            f"Features: {s.features!r}, not the FID InceptionV3: these numbers rank the rows of this table "
            "against each other and are NOT FID/KID values comparable with the paper's Table I."
        )
    table.write(out / "fid")
    summary = {"protocol": "hgan", "settings": _settings_json(s), "images": {k: str(v) for k, v in rows.items()} | {"real": str(real_dir)},
               "fid": results}
    write_bytes_atomically(out / "results.json", (json.dumps(summary, indent=2, default=str) + "\n").encode())
    write_bytes_atomically(out / "report.md", ("# handaug evaluation (H-GAN reference protocol)\n\n" + table.to_markdown() + "\n").encode())
    print(table.to_markdown() + "\n", flush=True)
    return table


def _settings_json(s: HganProtocol) -> dict[str, Any]:
    data = asdict(s)
    data["kid_subset_size"] = s.kid_subset_size
    return data


def _feature_extractor(s: HganProtocol) -> str | torch.nn.Module:
    """``"inception"`` after checking that its weights are there, else the registered extractor built once."""
    if s.features == "inception":
        find_inception_weights(s.inception_weights or s.feature_kwargs.get("weights"))
        return "inception"
    return create_feature_extractor(s.features, **s.feature_kwargs)

