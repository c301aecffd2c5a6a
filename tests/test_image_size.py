"""Images are measured from their header before decoding: too large is refused, skipped and counted, never decoded."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from handaug.data.folder import MAX_IMAGE_PIXELS, ImageFolder, ImageTooLarge, image_size, read_mask, read_rgb
from handaug.data.readers.base import DatasetReader
from handaug.data.unpaired import DomainDataset


def png_header(width: int, height: int) -> bytes:
    """A 45-byte PNG that is only a header (IHDR, IEND) claiming ``width`` × ``height`` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def folder(root: Path, n: int = 3, size: int = 40) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / f"{i}.png"), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return root


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The names of the files whose bytes are read for cv2 to decode (after their header passed)."""
    from handaug.data import folder as folder_module

    names: list[str] = []
    real = folder_module.read_bytes_from
    monkeypatch.setattr(folder_module, "read_bytes_from", lambda file, path, *a: names.append(Path(path).name) or real(file, path, *a))
    return names


def test_a_decompression_bomb_header_is_refused_not_raised_from_pillow(tmp_path, decoded):
    root = folder(tmp_path / "images")
    (root / "bomb.png").write_bytes(png_header(20_000, 20_000))  # 45 bytes claiming 400 megapixels
    reader = ImageFolder(root)  # scanning it must not raise PIL's DecompressionBombError
    position = [p.name for p in reader.images].index("bomb.png")
    with pytest.raises(ImageTooLarge, match="bomb.png.*too large"):
        reader[position]
    assert "bomb.png" not in decoded


def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path, decoded):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(10_000, 10_000))  # 100 MP: Pillow would only warn
    assert image_size(path) == (10_000, 10_000)
    for read in (read_rgb, read_mask):
        with pytest.raises(ImageTooLarge, match=r"10000×10000 .*maximum image size of 50000000 pixels"):
            read(path)
    small = folder(tmp_path / "small", n=1) / "0.png"
    assert read_rgb(small).shape == (40, 40, 3)
    with pytest.raises(ImageTooLarge, match="maximum image size of 1000 pixels"):
        read_rgb(small, max_pixels=1000)
    assert decoded == ["0.png"] and MAX_IMAGE_PIXELS == 50_000_000


def test_training_skips_and_counts_too_large_images(tmp_path, caplog):
    root = folder(tmp_path / "images", n=3)
    (root / "1.png").write_bytes(png_header(20_000, 20_000))
    (root / "2.png").write_bytes(png_header(9_000, 9_000))
    reader = ImageFolder(root, max_image_pixels=60_000_000)
    data = DomainDataset(reader, range(len(reader)), 32, random_crop=False, name="synthetic")
    with caplog.at_level(logging.WARNING):
        items = [data[i] for i in range(len(data))]
    assert all(item["image"].shape == (3, 32, 32) for item in items)
    assert data.decode_failures == 3  # item 1 passes 1.png and 2.png on its way to 0.png, item 2 passes 2.png
    assert "maximum image size of 60000000 pixels" in caplog.text
    with pytest.raises(ValueError, match="max_image_pixels must be a positive integer"):
        ImageFolder(root, max_image_pixels=0)


def test_readers_use_their_own_limit(tmp_path):
    root = folder(tmp_path / "images", n=1, size=40)

    class OneImage(DatasetReader):
        dataset = "one"

        def __init__(self, root: Path) -> None:
            self.root = root
            self.image_paths = [root / "0.png"]

        def load(self, index: int) -> dict:
            return {"image": self.read_image(self.image_paths[index]), "mask": self.read_mask(self.image_paths[index])}

    reader = OneImage(root)
    assert reader[0]["image"].shape == (40, 40, 3)
    reader.max_image_pixels = 1599
    with pytest.raises(OSError, match="40×40 .*maximum image size of 1599 pixels"):
        reader[0]
