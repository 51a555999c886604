"""A seeded benchmark task with headroom: fine detail, read where a distant mark says, among distractors.

The synthetic task (`synthetic.py`) saturates: its marks are S/8 wide, survive any early pooling, and
every pooling method reaches 97-100 % at every s1 on a GPU. This task is built so that aggressive
early down-sampling *destroys* half of what the label depends on.

Each image is a noisy grey background with a filled square of side S/8 in one of K = num_classes / 2
key colours (as in the synthetic task), and `1 + DISTRACTORS` small rings ("Landolt C" marks): hollow
squares of side G (G = S/20, at least 5 pixels) drawn with a one-pixel stroke and a gap of G/3 pixels
cut into the middle of their top or their bottom side. One ring has the square's colour, its centre at
least S/2 from the square's; the distractor rings have other colours (other key colours included) and
random gaps. The label is

    label = 2 * (the square's colour) + (1 if the ring of that colour has its gap at the top else 0)

Why pooling can lose it: a gap at the top and a gap at the bottom of a ring look the same in any 3x3
window (two line ends facing each other along a horizontal stroke); only where they sit relative to
the rest of a 6-pixel ring tells them apart. A stride-8 average of the stem's features (s1 = 4) mixes
a ring into one or two cells and keeps that it has a gap on a horizontal stroke, but not which one;
a strided convolution skips most pixels altogether. The colour half of the label stays easy at any
stride (a model that only reads it tops out at 50 %), so every model learns something and what
separates s1 = 1 from s1 = 4 is the fine detail. Which ring to read is decided by the distant square:
the same ring, with the same gap, is the answer in one image and a distractor in the next.
Chance is 1 / num_classes.

Samples are generated on the fly from (seed, split, index) like the synthetic task (a different
stream, so the two tasks never share images); the "train" and "val" splits of one seed never overlap.
"""

from __future__ import annotations

import functools

import torch

from nlpool.core.errors import NlpoolError

from .rendered import SPLITS, RenderedDataset
from .synthetic import PALETTE

# Where the gap of a ring is cut: (row, column) of its centre on a unit square, (0, 0) = top left.
GAP_PLACES = ((0.0, 0.5), (1.0, 0.5))  # top, bottom
TOP = 0
MAX_CLASSES = 2 * len(PALETTE)
DISTRACTORS = 3
NOISE_STD = 0.08
MIN_SIZE = 64


def check_detail_classes(num_classes: int) -> None:
    if num_classes % 2 or not 2 <= num_classes <= MAX_CLASSES:
        raise NlpoolError(
            f"the detail task has 2 classes per key colour, so it needs an even number of classes in"
            f" [2, {MAX_CLASSES}], got {num_classes}: use --num-classes 10 (or another even number)"
        )


def ring_side(image_size: int) -> int:
    """Side G of every ring: S / 20, at least 5 pixels (a gap needs a side with a middle)."""
    return max(5, image_size // 20)


@functools.cache
def ring_mask(side: int, place: int) -> torch.Tensor:
    """(G, G) bool: a one-pixel hollow square with a gap of about G / 3 pixels at GAP_PLACES[place] (a side)."""
    mask = torch.zeros(side, side, dtype=torch.bool)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    half = max(2, side // 3) / 2 + 0.01  # gap of G / 3 pixels, 2 at least
    row, col = ((side - 1) * v for v in GAP_PLACES[place])
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    mask &= ~(((ys - row).abs() < half) & ((xs - col).abs() < half))
    return mask


def _sample_seed(seed: int, split: str, index: int) -> int:
    return ((seed * len(SPLITS) + SPLITS.index(split)) * 998_244_353 + index + 7_777_777) % (2**63)


def _positions(
    count: int, size: int, side: int, square: tuple[tuple[int, int], int], gen: torch.Generator
) -> list[tuple[int, int]]:
    """Top-left corners of `count` rings that keep 2 pixels from each other and from the square
    (`square` = its top-left corner and side); the first one's centre is at least S / 2 from the square's.

    Placed one at a time, each by rejection sampling against those already placed (cheap: the marks
    cover a few percent of the image).
    """
    corners: list[tuple[int, int]] = []
    (sy, sx), square_side = square
    while len(corners) < count:
        y, x = torch.randint(1, size - side, (2,), generator=gen).tolist()
        if not corners and (y + side / 2 - sy - square_side / 2) ** 2 + (x + side / 2 - sx - square_side / 2) ** 2 < (size / 2) ** 2:
            continue
        if sy - side - 2 < y < sy + square_side + 2 and sx - side - 2 < x < sx + square_side + 2:
            continue
        if all(max(abs(y - cy), abs(x - cx)) >= side + 2 for cy, cx in corners):
            corners.append((y, x))
    return corners


def render_detail(seed: int, split: str, index: int, image_size: int, num_classes: int) -> tuple[torch.Tensor, int]:
    """One un-normalised image in [0, 1], (3, S, S) float32, and its label."""
    gen = torch.Generator().manual_seed(_sample_seed(seed, split, index))
    colour = int(torch.randint(0, num_classes // 2, (1,), generator=gen))
    places = torch.randint(0, len(GAP_PLACES), (1 + DISTRACTORS,), generator=gen).tolist()
    grey = 0.3 + 0.4 * torch.rand(1, generator=gen)
    image = grey + NOISE_STD * torch.randn(3, image_size, image_size, generator=gen)
    square = max(3, image_size // 8)
    sy, sx = torch.randint(0, image_size - square + 1, (2,), generator=gen).tolist()
    side = ring_side(image_size)
    corners = _positions(1 + DISTRACTORS, image_size, side, ((sy, sx), square), gen)
    others = [c for c in range(len(PALETTE)) if c != colour]  # distractors: any other colour, other key colours included
    colours = [colour, *(others[i] for i in torch.randint(0, len(others), (DISTRACTORS,), generator=gen).tolist())]
    jitter = 0.05 * torch.randn(len(corners) + 1, 3, 1, generator=gen)
    image[:, sy : sy + square, sx : sx + square] = torch.tensor(PALETTE[colour]).view(3, 1, 1) + jitter[-1].view(3, 1, 1)
    for (y, x), ring_colour, gap, shift in zip(corners, colours, places, jitter[:-1], strict=True):
        mask = ring_mask(side, gap)
        patch = image[:, y : y + side, x : x + side]
        patch[:, mask] = (torch.tensor(PALETTE[ring_colour]).view(3, 1) + shift).expand(3, int(mask.sum()))
    return image.clamp_(0, 1), 2 * colour + int(places[0] == TOP)


class DetailDataset(RenderedDataset):
    """`num_samples` normalised (3, S, S) images and labels of the detail task, rendered on access."""

    task = "detail"
    min_size = MIN_SIZE
    size_hint = "--input-size 128"
    check_classes = staticmethod(check_detail_classes)
    render = staticmethod(render_detail)
