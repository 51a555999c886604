"""Data loaders: the synthetic task's contract, STL10 / image-folder files the tests write, bad layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nlpool.core.errors import NlpoolError
from nlpool.data import MEAN, STD, STL10, DetailDataset, ImageFolder, SyntheticDataset, denormalize, open_datasets, synthetic_batch
from nlpool.data.augment import eval_transform, random_resized_crop, train_transform
from nlpool.data.detail import GAP_PLACES, TOP, render_detail, ring_mask, ring_side
from nlpool.data.synthetic import PALETTE, render_sample


def test_synthetic_is_deterministic_normalised_and_split_disjoint():
    images, labels = synthetic_batch(16, 32, 10, seed=3, split="val")
    again, labels_again = synthetic_batch(16, 32, 10, seed=3, split="val")
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    train, _ = synthetic_batch(16, 32, 10, seed=3, split="train")
    other_seed, _ = synthetic_batch(16, 32, 10, seed=4, split="val")
    assert not torch.equal(images, train) and not torch.equal(images, other_seed)
    pixels = denormalize(images)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # normalised from [0, 1] with MEAN / STD
    assert torch.allclose(SyntheticDataset(16, 32, 10, 3, "val")[5][0], images[5])
    assert len(MEAN) == len(STD) == 3


def test_synthetic_label_is_filled_colour_and_ring_match():
    """The label is 2 * (filled mark's colour) + (ring has the same colour): check it from the pixels."""
    size, mark = 64, 8  # marks are size / 8 wide, rings 2 pixels thick
    colours = torch.tensor(PALETTE[:5])  # the colours 10 classes use: 5 key colours
    for index in range(40):
        image, label = render_sample(0, "train", index, size, 10)
        dist = ((image.permute(1, 2, 0)[..., None, :] - colours) ** 2).sum(-1)  # (S, S, P)
        is_colour = (dist < 0.1).permute(2, 0, 1).float()  # (P, S, S)
        # Most pixels of one colour inside any mark-sized window: a filled mark fills it, a ring has 48 / 64.
        best = torch.nn.functional.avg_pool2d(is_colour[None], mark, 1)[0].amax((1, 2)) * mark**2
        filled = [c for c in range(len(colours)) if best[c] >= 58]
        rings = [c for c in range(len(colours)) if 40 <= best[c] < 58]
        assert filled == [label // 2], (index, best, label)
        assert (rings == []) == bool(label % 2), (index, best, label)


def test_synthetic_labels_cover_all_classes_and_reject_odd_counts():
    _, labels = synthetic_batch(400, 32, 10, seed=0, split="train")
    counts = torch.bincount(labels, minlength=10)
    assert (counts > 20).all()
    with pytest.raises(NlpoolError, match="even number of classes"):
        SyntheticDataset(10, 32, num_classes=7)
    with pytest.raises(NlpoolError, match="unknown synthetic split"):
        SyntheticDataset(10, 32, split="test")


def _ring_gap(image: torch.Tensor, colour: tuple[float, float, float]) -> int:
    """The gap place of the one flat mark drawn in `colour`, read from the pixels against both templates."""
    near = ((image - torch.tensor(colour).view(3, 1, 1)) ** 2).sum(0) < 0.05  # the colour +- jitter
    # A ring is one flat colour, so each of its pixels equals a neighbour exactly; noisy background pixels never do.
    flat = torch.zeros_like(near)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        flat |= (image == image.roll((dy, dx), (1, 2))).all(0)
    points = (near & flat).nonzero()
    side = ring_side(image.shape[-1])
    top, left = points.amin(0).tolist()
    crop = torch.zeros(side, side, dtype=torch.bool)
    crop[points[:, 0] - top, points[:, 1] - left] = True
    matches = [p for p in range(len(GAP_PLACES)) if torch.equal(crop, ring_mask(side, p))]
    assert len(matches) == 1, matches
    return matches[0]


def test_detail_label_is_the_square_colour_and_the_gap_side_of_the_ring_of_that_colour():
    square = 128 // 8
    for index in range(30):
        image, label = render_detail(0, "train", index, 128, 10)
        colour = PALETTE[label // 2]
        filled = (((image - torch.tensor(colour).view(3, 1, 1)) ** 2).sum(0) < 0.05).float()
        square_at = torch.nn.functional.avg_pool2d(filled[None, None], square, 1)[0, 0]
        assert square_at.max() == 1, index  # a whole square of the label's colour
        y, x = divmod(int(square_at.argmax()), square_at.shape[1])
        image[:, y : y + square, x : x + square] = torch.rand(3, square, square)  # hide the square: the one ring of its colour is left
        assert _ring_gap(image, colour) == (TOP if label % 2 else 1 - TOP), (index, label)


def test_detail_rings_are_thin_and_their_gaps_differ_only_in_where_they_are():
    side = ring_side(128)
    assert side == 6
    top, bottom = (ring_mask(side, p) for p in range(len(GAP_PLACES)))
    assert int(top.sum()) == int(bottom.sum()) == 4 * side - 4 - 2  # each gap removes 2 pixels of the stroke
    assert torch.equal(top.flip(0), bottom)  # mirror images: the same local features, in other places


def test_detail_is_deterministic_split_disjoint_and_balanced():
    train, val = open_datasets("detail:300", 64, 10, seed=2)
    assert isinstance(train, DetailDataset) and (len(train), len(val)) == (300, 75)
    assert torch.equal(train[7][0], DetailDataset(300, 64, 10, 2, "train")[7][0])
    assert not torch.equal(train[0][0], val[0][0]) and not torch.equal(train[0][0], SyntheticDataset(1, 64, 10, 2, "train")[0][0])
    counts = torch.bincount(torch.tensor([train[i][1] for i in range(300)]), minlength=10)
    assert (counts > 10).all(), counts
    with pytest.raises(NlpoolError, match="even number of classes"):
        DetailDataset(10, 128, num_classes=9)
    with pytest.raises(NlpoolError, match="at least 64x64"):
        DetailDataset(10, 32)


def test_augmentation_shapes_and_range():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    for _ in range(20):
        crop = random_resized_crop(image.float() / 255, 32)
        assert crop.shape == (3, 32, 32)
    assert train_transform(image, 32).shape == (3, 32, 32)
    out = eval_transform(image, 32)
    assert out.shape == (3, 32, 32)
    # Evaluation is deterministic; its centre crop of a constant image is that constant, normalised.
    grey = torch.full((3, 40, 60), 128, dtype=torch.uint8)
    expected = (128 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(eval_transform(grey, 32), expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-5)


def write_stl10(root, images: np.ndarray, labels: np.ndarray, split: str = "train") -> None:
    """Images (N, 96, 96, 3) uint8 HWC stored as STL10 does: per channel, column-major."""
    base = root / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    images.transpose(0, 3, 2, 1).astype(np.uint8).tofile(base / f"{split}_X.bin")
    labels.astype(np.uint8).tofile(base / f"{split}_y.bin")


def test_stl10_reads_column_major_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    write_stl10(tmp_path, hwc, np.array([1, 10, 4]))
    data = STL10(tmp_path, "train", transform=lambda x: x)
    assert len(data) == 3 and data.num_classes == 10
    image, label = data[1]
    assert label == 9
    assert torch.equal(image, torch.from_numpy(hwc[1]).permute(2, 0, 1))  # row / column order restored
    # The PATH may also be the stl10_binary folder itself.
    assert len(STL10(tmp_path / "stl10_binary", "train", transform=lambda x: x)) == 3


def test_stl10_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(NlpoolError, match=r"train_X.bin not found: expected .*never downloads"):
        STL10(tmp_path, "train", transform=lambda x: x)
    base = tmp_path / "stl10_binary"
    write_stl10(tmp_path, np.zeros((2, 96, 96, 3), np.uint8), np.array([1, 2]))
    (base / "train_X.bin").write_bytes(b"\0" * (96 * 96 * 3 + 5))
    with pytest.raises(NlpoolError, match="not a multiple of 27648"):
        STL10(tmp_path, "train", transform=lambda x: x)
    write_stl10(tmp_path, np.zeros((2, 96, 96, 3), np.uint8), np.array([1]))
    with pytest.raises(NlpoolError, match=r"1 labels but .* 2 images"):
        STL10(tmp_path, "train", transform=lambda x: x)
    write_stl10(tmp_path, np.zeros((2, 96, 96, 3), np.uint8), np.array([0, 11]))
    with pytest.raises(NlpoolError, match=r"outside 1\.\.10"):
        STL10(tmp_path, "train", transform=lambda x: x)


def write_folder(root, split: str, classes: dict[str, int], size=(20, 30)) -> None:
    for name, count in classes.items():
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")


def test_image_folder_reads_classes_and_images(tmp_path):
    write_folder(tmp_path, "train", {"cat": 2, "dog": 3})
    write_folder(tmp_path, "val", {"cat": 1, "dog": 1})
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    data = ImageFolder(tmp_path, "train", transform=lambda x: x)
    assert data.classes == ["cat", "dog"] and len(data) == 5
    image, label = data[3]
    assert label == 1 and image.shape == (3, 20, 30) and image.dtype == torch.uint8 and int(image[0, 0, 0]) == 40
    train, val = open_datasets(f"folder:{tmp_path}", 16, 2)
    assert train[0][0].shape == (3, 16, 16) and len(val) == 2


def test_image_folder_malformed_layouts_are_clear_errors(tmp_path):
    with pytest.raises(NlpoolError, match=r"not found: expected PATH/train/<class>"):
        open_datasets(f"folder:{tmp_path / 'missing'}", 16, 2)
    write_folder(tmp_path, "train", {"cat": 1, "dog": 1})
    with pytest.raises(NlpoolError, match="val not found"):
        open_datasets(f"folder:{tmp_path}", 16, 2)
    write_folder(tmp_path, "val", {"cat": 1, "fox": 1})
    with pytest.raises(NlpoolError, match="has classes"):
        open_datasets(f"folder:{tmp_path}", 16, 2)
    write_folder(tmp_path, "val", {"dog": 1})
    (tmp_path / "val" / "fox" / "0.png").unlink()
    (tmp_path / "val" / "fox").rmdir()
    with pytest.raises(NlpoolError, match="has 2 classes but the model has 3"):
        open_datasets(f"folder:{tmp_path}", 16, 3)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"garbage")
    train, _ = open_datasets(f"folder:{tmp_path}", 16, 2)
    with pytest.raises(NlpoolError, match="cannot decode image"):
        train[0]


def test_unknown_data_spec():
    with pytest.raises(NlpoolError, match="unknown --data"):
        open_datasets("imagenet", 32, 10)
    with pytest.raises(NlpoolError, match="synthetic:N"):
        open_datasets("synthetic:many", 32, 10)
    with pytest.raises(NlpoolError, match="detail:N"):
        open_datasets("detail:many", 128, 10)
