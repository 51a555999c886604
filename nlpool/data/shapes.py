"""A small image-folder data set written as real PNG/JPEG files: dark, low-contrast photos of shapes
and textures (checker, disc, stripes) with sensor noise.

It exists to exercise the path every real user takes — `folder:PATH` training and export
calibration — with images whose statistics are far from the synthetic task's bright, saturated
colours, so that calibrating on the wrong data shows (benchmarks/calibration_data.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SHAPE_CLASSES = ("checker", "disc", "stripes")  # sorted, as class folders are read


def render_shape(label: int, rng: np.random.Generator, size: int = 40, noise: float = 4.0, contrast: int = 25) -> np.ndarray:
    """One (size, size, 3) uint8 photo of class `label`: a dim background, the pattern `contrast`..2x`contrast`
    levels brighter, Gaussian noise of std `noise`."""
    yy, xx = np.mgrid[:size, :size]
    if label == 0:
        step = int(rng.integers(3, 6))
        mask = ((yy // step) + (xx // step)) % 2 == 0
    elif label == 1:
        cy, cx = rng.integers(size // 4, size - size // 4, size=2).tolist()
        radius = int(rng.integers(size // 7, size // 4 + 1))
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius * radius
    else:
        mask = (xx // int(rng.integers(2, 5))) % 2 == 0
    image = np.broadcast_to(rng.integers(10, 40, size=3), (size, size, 3)).astype(np.float64)
    image[mask] += rng.integers(contrast, 2 * contrast)
    image += rng.normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_shapes_folder(root: str | Path, per_split: dict[str, int], seed: int = 0, size: int = 40, noise: float = 4.0,
                        contrast: int = 25) -> Path:
    """Write root/<split>/<class>/<i>.png|jpg, `per_split[split]` images per class; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        for label, name in enumerate(SHAPE_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                suffix = ".png" if index % 2 else ".jpg"
                Image.fromarray(render_shape(label, rng, size, noise, contrast)).save(folder / f"{index}{suffix}")
    return root
