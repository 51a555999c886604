"""A seeded synthetic task whose label needs a relation between distant parts of the image.

Each image is a noisy grey background with two marks of side S/8 at least S/2 apart (centre to centre):
a *filled* square A and a hollow square (a *ring*) B. A's colour is one of K = num_classes / 2 "key"
colours; B has A's colour or, with probability 1/2, another colour. The label is

    label = 2 * (colour index of A) + (1 if B has A's colour else 0)

Half of the label (A's colour) is local; the other half (do two far-apart marks match?) is relational.
After global average pooling the "match" bit is not a linear function of per-location features (a
sum of "filled of colour a" and "ring of colour b" detectors cannot separate a == b from a != b), so the
network must bring the two distant marks together before the final pooling: through deep layers with a
large receptive field, or through the self-attentive pooling's attention. A model that reads colours
but not the relation tops out at 50 % accuracy; chance is 1 / num_classes.

Samples are generated on the fly from (seed, split, index): no files, any size, identical on every
machine. The "train" and "val" splits of one seed never share a sample.
"""

from __future__ import annotations

import torch

from nlpool.core.errors import NlpoolError

from .rendered import SPLITS, RenderedDataset

# Well separated RGB colours; the first K are the key colours (K = num_classes / 2).
PALETTE = (
    (0.95, 0.10, 0.10),  # red
    (0.10, 0.80, 0.15),  # green
    (0.10, 0.25, 0.95),  # blue
    (0.95, 0.90, 0.10),  # yellow
    (0.85, 0.15, 0.85),  # magenta
    (0.10, 0.85, 0.90),  # cyan
    (1.00, 0.55, 0.05),  # orange
    (0.45, 0.10, 0.60),  # purple
    (1.00, 1.00, 1.00),  # white
    (0.00, 0.00, 0.00),  # black
    (0.55, 0.30, 0.10),  # brown
    (0.60, 0.95, 0.55),  # light green
)
MAX_CLASSES = 2 * len(PALETTE)
NOISE_STD = 0.08


def check_synthetic_classes(num_classes: int) -> None:
    if num_classes % 2 or not 2 <= num_classes <= MAX_CLASSES:
        raise NlpoolError(
            f"the synthetic task has 2 classes per key colour, so it needs an even number of classes in"
            f" [2, {MAX_CLASSES}], got {num_classes}: use --num-classes 10 (or another even number)"
        )


def _sample_seed(seed: int, split: str, index: int) -> int:
    return ((seed * len(SPLITS) + SPLITS.index(split)) * 1_000_000_007 + index) % (2**63)


def _mark_positions(size: int, mark: int, gen: torch.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left corners of two marks whose centres are at least size / 2 apart (rejection sampling)."""
    while True:
        ya, xa, yb, xb = torch.randint(0, size - mark + 1, (4,), generator=gen).tolist()
        if (ya - yb) ** 2 + (xa - xb) ** 2 >= (size / 2) ** 2:
            return (ya, xa), (yb, xb)


def render_sample(seed: int, split: str, index: int, image_size: int, num_classes: int) -> tuple[torch.Tensor, int]:
    """One un-normalised image in [0, 1], (3, S, S) float32, and its label."""
    gen = torch.Generator().manual_seed(_sample_seed(seed, split, index))
    keys = num_classes // 2
    colour = int(torch.randint(0, keys, (1,), generator=gen))
    match = int(torch.randint(0, 2, (1,), generator=gen))
    if match:
        ring_colour = colour
    else:  # another colour among the first max(K, 4): the key colours, plus a few when K is small
        others = [c for c in range(max(keys, 4)) if c != colour]
        ring_colour = others[int(torch.randint(0, len(others), (1,), generator=gen))]

    grey = 0.3 + 0.4 * torch.rand(1, generator=gen)
    image = grey + NOISE_STD * torch.randn(3, image_size, image_size, generator=gen)
    mark = max(3, image_size // 8)
    thickness = max(1, mark // 4)
    (ya, xa), (yb, xb) = _mark_positions(image_size, mark, gen)
    jitter = 0.05 * torch.randn(2, 3, 1, 1, generator=gen)
    image[:, ya : ya + mark, xa : xa + mark] = torch.tensor(PALETTE[colour]).view(3, 1, 1) + jitter[0]
    ring = torch.ones(mark, mark, dtype=torch.bool)
    ring[thickness:-thickness, thickness:-thickness] = False
    ring_rgb = (torch.tensor(PALETTE[ring_colour]).view(3, 1, 1) + jitter[1]).expand(3, mark, mark)
    image[:, yb : yb + mark, xb : xb + mark][:, ring] = ring_rgb[:, ring]
    return image.clamp_(0, 1), 2 * colour + match


class SyntheticDataset(RenderedDataset):
    """`num_samples` normalised (3, S, S) images and labels of the task above, rendered on access."""

    task = "synthetic"
    min_size = 16
    check_classes = staticmethod(check_synthetic_classes)
    render = staticmethod(render_sample)


def synthetic_batch(
    num_samples: int, image_size: int, num_classes: int = 10, seed: int = 0, split: str = "val"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `num_samples` samples of a split as tensors: normalised (N, 3, S, S) float32, labels (N,) int64.

    """
    dataset = SyntheticDataset(num_samples, image_size, num_classes, seed, split)
    images, labels = zip(*(dataset[i] for i in range(num_samples)), strict=True)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
