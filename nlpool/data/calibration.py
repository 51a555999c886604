"""The images an export calibrates int8 ranges on and measures fidelity on: the user's own data.

Calibration ranges come from the calibration images, so they must be drawn from the distribution the
model will see; fidelity figures only mean something on the user's images. Specs are those of
`nlpool train --data` plus plain arrays:

- `synthetic` / `synthetic:N`: the built-in task (calibration from its train split, fidelity from val);
- `folder:PATH`: an image folder (PATH/train/<class>/..., PATH/val/<class>/...): train / val;
- `stl10:PATH`: STL10 binaries: train / test;
- `npy:FILE`: N images in a `.npy` array, or a `.npz` with `images` and optional `labels` (N,) arrays.
  Images are NHWC or NCHW with 3 channels at the model's input size; uint8 arrays hold pixels 0..255,
  float arrays pixels in [0, 1]. Even-numbered images calibrate, odd-numbered ones measure fidelity.

Images come back as pixels in [0, 1] (no normalisation): the export normalises them with the
checkpoint's own statistics, or feeds them raw to a camera-ready model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nlpool.core.checks import input_file
from nlpool.core.errors import NlpoolError

from .augment import resize_center_crop, to_float
from .folder import ImageFolder
from .normalize import denormalize
from .stl10 import STL10, STL10_CLASSES
from .synthetic import MAX_CLASSES, SyntheticDataset

CALIB_DATA_SPECS = "synthetic[:N], folder:PATH, stl10:PATH or npy:FILE (.npy images or .npz with images[, labels])"
SYNTHETIC_SEED = 0
# A model whose class count the synthetic task cannot render (odd, or ImageNet's 1000) still gets
# images of the 10-class task as inputs, without labels.
SYNTHETIC_FALLBACK_CLASSES = 10


@dataclass(frozen=True)
class ImageSet:
    """(N, 3, S, S) float pixels in [0, 1], their labels when the data has them, and where they came from."""

    pixels: torch.Tensor
    labels: torch.Tensor | None
    source: str

    def __len__(self) -> int:
        return len(self.pixels)


@dataclass(frozen=True)
class ExportImages:
    """Disjoint calibration and fidelity images of one data spec, and its class names when it has them."""

    calibration: ImageSet
    fidelity: ImageSet
    class_names: tuple[str, ...] | None
    synthetic: bool
    shortfall: str | None = None  # a warning line when the data holds fewer calibration images than asked for


def _with_shortfall(images: ExportImages, spec: str, asked: int) -> ExportImages:
    """`images`, with a warning naming both numbers when the data gave fewer calibration images than `asked`
    (a silent shortfall looked like the asked-for calibration)."""
    got = len(images.calibration)
    if got >= asked:
        return images
    return replace(images, shortfall=f"warning: --calib-samples {asked} asks for more calibration images than {spec} holds: "
                                     f"calibrating on {got} ({images.calibration.source})")


def evenly_spaced(length: int, count: int) -> list[int]:
    """`count` indices spread over `length` items: image folders are sorted by class, so the first N
    images would all be of one class."""
    if count >= length:
        return list(range(length))
    return sorted({int(np.rint(i)) for i in np.linspace(0, length - 1, count)})


def _take(dataset: Dataset, count: int, source: str, pixels_of: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> ImageSet:
    indices = evenly_spaced(len(dataset), count)
    images, labels = zip(*(dataset[i] for i in indices), strict=True)
    return ImageSet(torch.stack([pixels_of(x) for x in images]), torch.tensor(labels, dtype=torch.int64), source)


def _eval_pixels(image: torch.Tensor, size: int) -> torch.Tensor:
    """The evaluation view of an image (shorter side resized, centre crop) as [0, 1] pixels."""
    return resize_center_crop(to_float(image), size).clamp_(0, 1)


def _check_classes(spec: str, found: int, num_classes: int) -> None:
    if found != num_classes:
        raise NlpoolError(f"--calib-data {spec} has {found} classes but the model has {num_classes}: "
                          "pass the data the model was trained on")


def _npy(spec: str, path: Path, input_size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    input_file(f"--calib-data {spec}:", path, "pass a .npy or .npz file of images")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise NlpoolError(f"--calib-data {spec}: {path} is not a readable NumPy file ({err}): write it with numpy.save") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "images" not in loaded.files:
                raise NlpoolError(f"--calib-data {spec}: {path} has no 'images' array (has {loaded.files}): "
                                  "write it with np.savez(f, images=..., labels=...)")
            images = loaded["images"]
            labels = loaded["labels"] if "labels" in loaded.files else None
    else:
        images = loaded
    if images.ndim != 4 or 3 not in (images.shape[1], images.shape[3]):
        raise NlpoolError(f"--calib-data {spec}: images have shape {images.shape}, expected (N, H, W, 3) or (N, 3, H, W)")
    if images.shape[3] == 3 and images.shape[1] != 3:
        images = images.transpose(0, 3, 1, 2)
    if images.shape[2:] != (input_size, input_size):
        raise NlpoolError(f"--calib-data {spec}: images are {images.shape[2]}x{images.shape[3]} but the model takes "
                          f"{input_size}x{input_size}: resize them first")
    if len(images) < 2:
        raise NlpoolError(f"--calib-data {spec}: {len(images)} image(s): at least 2 are needed (one to calibrate, one to check)")
    if images.dtype == np.uint8:
        pixels = images.astype(np.float32) / 255
    elif np.issubdtype(images.dtype, np.floating):
        pixels = images.astype(np.float32)
        bad = ~np.isfinite(pixels)
        if bad.any():  # before the range check: NaN compares false, so a min..max would hide it
            kind = "NaN" if np.isnan(pixels).any() else "infinite"
            raise NlpoolError(f"--calib-data {spec}: {int(bad.sum())} pixel value(s) are {kind} (the first in image "
                              f"{int(np.argwhere(bad)[0][0])}): fix or drop those images")
        if pixels.min() < -1e-6 or pixels.max() > 1 + 1e-6:
            raise NlpoolError(f"--calib-data {spec}: float images must hold pixels in [0, 1] "
                              f"(found {pixels.min():.3g}..{pixels.max():.3g}): divide by 255, or pass uint8")
    else:
        raise NlpoolError(f"--calib-data {spec}: images are {images.dtype}: pass uint8 (0..255) or float (0..1)")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes:
            raise NlpoolError(f"--calib-data {spec}: labels must be {len(images)} integers in 0..{num_classes - 1}")
    return pixels, labels


def export_images(spec: str, input_size: int, num_classes: int, calib_samples: int, fidelity_samples: int) -> ExportImages:
    """Calibration images (training split) and fidelity images (validation split) of a data spec."""
    kind, _, arg = spec.partition(":")
    eval_pixels = partial(_eval_pixels, size=input_size)
    if kind == "synthetic":
        if arg and not arg.isdigit():
            raise NlpoolError(f"--calib-data {spec}: N in synthetic:N is a number of images, e.g. synthetic:200")
        count = int(arg) if arg else calib_samples
        renderable = num_classes % 2 == 0 and 2 <= num_classes <= MAX_CLASSES
        classes = num_classes if renderable else SYNTHETIC_FALLBACK_CLASSES
        train = SyntheticDataset(min(count, calib_samples), input_size, classes, SYNTHETIC_SEED, "train")
        val = SyntheticDataset(fidelity_samples, input_size, classes, SYNTHETIC_SEED, "val")
        where = f"synthetic, seed {SYNTHETIC_SEED}"
        calibration = _take(train, calib_samples, f"{where}, train split", denormalize)
        fidelity = _take(val, fidelity_samples, f"{where}, val split", denormalize)
        if not renderable:
            fidelity = ImageSet(fidelity.pixels, None, fidelity.source)
        return ExportImages(calibration, fidelity, None, True)
    if kind == "folder" and arg:
        train, val = ImageFolder(arg, "train", eval_pixels), ImageFolder(arg, "val", eval_pixels)
        _check_classes(spec, train.num_classes, num_classes)
        return _with_shortfall(ExportImages(_take(train, calib_samples, f"folder {arg}, train split"),
                                            _take(val, fidelity_samples, f"folder {arg}, val split"), tuple(train.classes), False),
                               spec, calib_samples)
    if kind == "stl10" and arg:
        train, val = STL10(arg, "train", eval_pixels), STL10(arg, "test", eval_pixels)
        _check_classes(spec, train.num_classes, num_classes)
        return _with_shortfall(ExportImages(_take(train, calib_samples, f"STL10 {arg}, train split"),
                                            _take(val, fidelity_samples, f"STL10 {arg}, test split"), STL10_CLASSES, False),
                               spec, calib_samples)
    if kind == "npy" and arg:
        pixels, labels = _npy(spec, Path(arg), input_size, num_classes)
        sets = []
        for parity, count, split in ((0, calib_samples, "even images"), (1, fidelity_samples, "odd images")):
            part = pixels[parity::2]
            chosen = evenly_spaced(len(part), count)
            part_labels = None if labels is None else torch.from_numpy(labels[parity::2][chosen].astype(np.int64))
            sets.append(ImageSet(torch.from_numpy(np.ascontiguousarray(part[chosen])), part_labels, f"{arg}, {split}"))
        return _with_shortfall(ExportImages(sets[0], sets[1], None, False), spec, calib_samples)
    raise NlpoolError(f"unknown --calib-data {spec!r}: use {CALIB_DATA_SPECS}")
