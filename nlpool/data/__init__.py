"""Datasets for training and calibration: a seeded synthetic task, STL10 binaries, image folders.

`open_datasets("synthetic[:N]" | "detail[:N]" | "stl10:PATH" | "folder:PATH", ...)` gives the (train,
validation) pair the training loop uses; everything returns normalised float (3, S, S) images.
"""

from __future__ import annotations

from functools import partial

from torch.utils.data import Dataset

from nlpool.core.errors import NlpoolError

from .augment import eval_transform, train_transform
from .calibration import CALIB_DATA_SPECS, ExportImages, ImageSet, export_images
from .detail import DetailDataset
from .folder import ImageFolder
from .normalize import MEAN, STD, Normalization, denormalize, normalize
from .shapes import SHAPE_CLASSES, write_shapes_folder
from .stl10 import STL10
from .synthetic import SyntheticDataset, synthetic_batch

DEFAULT_SYNTHETIC_TRAIN = 8000
DATA_SPECS = "synthetic, synthetic:N (N training images), detail, detail:N (the fine-detail task), stl10:PATH or folder:PATH"
GENERATED = {"synthetic": SyntheticDataset, "detail": DetailDataset}  # seeded tasks rendered on access


def open_datasets(spec: str, input_size: int, num_classes: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, val) datasets for a --data spec, checked against the model's classes.

    Synthetic and detail: N training and N / 4 validation images (at least 1) of that seed. STL10: train / test.
    Folders: train / val. Real images are augmented for training and centre-cropped for validation.
    """
    kind, _, arg = spec.partition(":")
    if kind in GENERATED:
        try:
            train_size = int(arg) if arg else DEFAULT_SYNTHETIC_TRAIN
        except ValueError:
            raise NlpoolError(f"--data {spec}: N in {kind}:N is the number of training images, e.g. {kind}:2000") from None
        val_size = max(1, train_size // 4)
        task = GENERATED[kind]
        return task(train_size, input_size, num_classes, seed, "train"), task(val_size, input_size, num_classes, seed, "val")
    if kind in ("stl10", "folder") and arg:
        train_tf, eval_tf = partial(train_transform, size=input_size), partial(eval_transform, size=input_size)
        if kind == "stl10":
            train, val = STL10(arg, "train", train_tf), STL10(arg, "test", eval_tf)
        else:
            train, val = ImageFolder(arg, "train", train_tf), ImageFolder(arg, "val", eval_tf)
        if train.num_classes != num_classes:
            raise NlpoolError(
                f"--data {spec} has {train.num_classes} classes but the model has {num_classes}: pass --num-classes {train.num_classes}"
            )
        return train, val
    raise NlpoolError(f"unknown --data {spec!r}: use {DATA_SPECS}")


__all__ = [
    "CALIB_DATA_SPECS",
    "DATA_SPECS",
    "MEAN",
    "SHAPE_CLASSES",
    "STD",
    "STL10",
    "DetailDataset",
    "ExportImages",
    "ImageFolder",
    "ImageSet",
    "Normalization",
    "SyntheticDataset",
    "denormalize",
    "eval_transform",
    "export_images",
    "normalize",
    "open_datasets",
    "synthetic_batch",
    "train_transform",
    "write_shapes_folder",
]
