"""STL10 in its binary distribution (`stl10_binary/{train,test}_X.bin`, `{train,test}_y.bin`).

`*_X.bin` is raw uint8, 96x96x3 per image, each channel stored column-major; `*_y.bin` holds one uint8
label in 1..10 per image. Files are memory-mapped, so opening the dataset reads nothing; every size is
checked up front so a truncated download fails with one clear line instead of a bad batch later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nlpool.core.errors import NlpoolError

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
NUM_CLASSES = 10
# The names in the archive's class_names.txt, in label order.
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
LAYOUT = "PATH/stl10_binary/{train,test}_X.bin and {train,test}_y.bin (or those files directly in PATH)"


def stl10_files(root: str | Path, split: str) -> tuple[Path, Path]:
    """The image and label files of `split` ("train" or "test") under `root`."""
    root = Path(root)
    base = root / "stl10_binary" if (root / "stl10_binary").is_dir() else root
    images, labels = base / f"{split}_X.bin", base / f"{split}_y.bin"
    for path in (images, labels):
        if not path.is_file():
            raise NlpoolError(f"STL10 file {path} not found: expected {LAYOUT} (nlpool never downloads datasets)")
    return images, labels


class STL10(Dataset):
    """One STL10 split as (transform(uint8 (3, 96, 96) image), label in 0..9)."""

    def __init__(self, root: str | Path, split: str, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        images_path, labels_path = stl10_files(root, split)
        size = images_path.stat().st_size
        if size == 0 or size % IMAGE_BYTES:
            raise NlpoolError(
                f"{images_path} is {size} bytes, not a multiple of {IMAGE_BYTES} (96x96x3): the file is truncated or not STL10"
            )
        count = size // IMAGE_BYTES
        labels = np.fromfile(labels_path, dtype=np.uint8)
        if labels.size != count:
            raise NlpoolError(f"{labels_path} has {labels.size} labels but {images_path} has {count} images: re-extract the STL10 archive")
        if labels.min() < 1 or labels.max() > NUM_CLASSES:
            raise NlpoolError(f"{labels_path} has labels outside 1..{NUM_CLASSES}: it is not an STL10 label file")
        self.images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(count, 3, SIDE, SIDE))
        self.labels = torch.from_numpy(labels.astype(np.int64) - 1)
        self.transform = transform
        self.num_classes = NUM_CLASSES
        self.classes = list(STL10_CLASSES)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # Column-major channels: the stored (x, y) order is transposed to (row, column).
        image = torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(0, 2, 1)))
        return self.transform(image), int(self.labels[index])
