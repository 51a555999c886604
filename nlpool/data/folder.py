"""Image-folder datasets (ImageNet / Visual Wake Words style): one sub-folder per class.

Layout: PATH/train/<class>/<image> and PATH/val/<class>/<image>; classes are the sorted folder names
of PATH/train, and the val split must use the same names. Images are decoded with Pillow (any format
it reads) and converted to RGB.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from nlpool.core.errors import NlpoolError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
LAYOUT = "PATH/train/<class>/*.jpg and PATH/val/<class>/*.jpg (one sub-folder per class, same classes in both)"


def find_classes(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise NlpoolError(f"image folder {split_dir} not found: expected {LAYOUT} (nlpool never downloads datasets)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise NlpoolError(f"{split_dir} has {len(classes)} class folder(s), need at least 2: expected {LAYOUT}")
    return classes


class ImageFolder(Dataset):
    """One split of an image-folder tree as (transform(uint8 (3, H, W) image), class index)."""

    def __init__(self, root: str | Path, split: str, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        root = Path(root)
        self.classes = find_classes(root / "train")
        split_dir = root / split
        found = find_classes(split_dir)
        if found != self.classes:
            raise NlpoolError(f"{split_dir} has classes {found[:5]}... but {root / 'train'} has {self.classes[:5]}...: expected {LAYOUT}")
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((split_dir / name).iterdir())
            if path.suffix.lower() in EXTENSIONS
        ]
        empty = [name for label, name in enumerate(self.classes) if not any(lab == label for _, lab in self.samples)]
        if empty:
            raise NlpoolError(f"class folder(s) {empty[:3]} in {split_dir} hold no images ({', '.join(EXTENSIONS)}): expected {LAYOUT}")
        self.transform = transform
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise NlpoolError(f"cannot decode image {path} ({err}): remove or replace the file") from None
        return self.transform(torch.from_numpy(array.copy()).permute(2, 0, 1)), label
