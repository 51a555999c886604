"""A user's own data: calibration/fidelity images from their specs, pixel input, class names,
the export's choice of data, and a folder trained on then exported (the Python API: tests/test_api.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from custom_cnn import CLASSES, SIZE, TinyNet

from firmware.common import HEADER
from nlpool.checkpoint import save_checkpoint, training_record
from nlpool.core.errors import NlpoolError
from nlpool.data import Normalization, export_images
from nlpool.data.shapes import SHAPE_CLASSES, write_shapes_folder
from nlpool.models import ModelConfig, PixelInput, build_model


def test_folder_spec_gives_disjoint_splits_spread_over_classes_with_names(tmp_path):
    root = write_shapes_folder(tmp_path / "shapes", {"train": 6, "val": 4})
    images = export_images(f"folder:{root}", SIZE, len(CLASSES), calib_samples=9, fidelity_samples=12)
    assert images.class_names == CLASSES and not images.synthetic
    assert images.calibration.pixels.shape == (9, 3, SIZE, SIZE) and len(images.fidelity) == 12
    assert sorted(set(images.calibration.labels.tolist())) == [0, 1, 2]  # evenly spaced, not the first class only
    assert images.fidelity.labels.tolist() == [i // 4 for i in range(12)]
    assert float(images.calibration.pixels.min()) >= 0.0 and float(images.calibration.pixels.max()) <= 1.0


def test_npy_and_npz_specs(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, size=(10, SIZE, SIZE, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    np.savez(tmp_path / "labelled.npz", images=frames.transpose(0, 3, 1, 2).astype(np.float32) / 255, labels=np.arange(10) % 3)
    plain = export_images(f"npy:{tmp_path / 'frames.npy'}", SIZE, 3, 100, 100)
    assert len(plain.calibration) == 5 and len(plain.fidelity) == 5 and plain.fidelity.labels is None
    np.testing.assert_allclose(plain.calibration.pixels[1].permute(1, 2, 0).numpy() * 255, frames[2], atol=1e-4)
    labelled = export_images(f"npy:{tmp_path / 'labelled.npz'}", SIZE, 3, 100, 100)
    assert labelled.fidelity.labels.tolist() == [1, 0, 2, 1, 0]  # odd images 1, 3, 5, 7, 9


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.zeros((4, SIZE, SIZE), np.uint8), "expected \\(N, H, W, 3\\)"),
        (np.zeros((4, 16, 16, 3), np.uint8), "resize them first"),
        (np.full((4, SIZE, SIZE, 3), 7.0, np.float32), "pixels in \\[0, 1\\]"),
        (np.zeros((1, SIZE, SIZE, 3), np.uint8), "at least 2"),
        (np.zeros((4, SIZE, SIZE, 3), np.int64), "pass uint8"),
    ],
)
def test_bad_npy_data_is_one_clear_error(tmp_path, content, message):
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(NlpoolError, match=message):
        export_images(f"npy:{tmp_path / 'bad.npy'}", SIZE, 3, 10, 10)


def test_bad_specs(tmp_path):
    with pytest.raises(NlpoolError, match="unknown --calib-data"):
        export_images("camera", SIZE, 3, 10, 10)
    with pytest.raises(NlpoolError, match="does not exist"):
        export_images(f"npy:{tmp_path / 'none.npy'}", SIZE, 3, 10, 10)
    root = write_shapes_folder(tmp_path / "shapes", {"train": 2, "val": 1})
    with pytest.raises(NlpoolError, match="has 3 classes but the model has 10"):
        export_images(f"folder:{root}", SIZE, 10, 10, 10)


def test_training_record_carries_data_normalisation_and_class_names(tmp_path):
    cfg = ModelConfig(input_size=64, num_classes=3)
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model(cfg), cfg, train={"data": "folder:/x"}, input_mean=[0.5, 0.5, 0.5],
                    input_std=[0.25, 0.25, 0.25], classes=list(CLASSES))
    record = training_record(path)
    assert record.data == "folder:/x" and record.class_names == CLASSES
    assert record.normalization == Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    save_checkpoint(path, build_model(cfg), cfg, input_mean=[0.5, 0.5], input_std=[0.25, 0.25, 0.25])
    with pytest.raises(NlpoolError, match="malformed input_mean"):
        training_record(path)


def test_pixel_input_network_equals_the_model_on_normalised_pixels():
    torch.manual_seed(0)
    model = TinyNet().eval()
    pixels = torch.randint(0, 256, (2, 3, SIZE, SIZE)).float()
    wrapped = PixelInput(model, Normalization().mean, Normalization().std).eval()
    with torch.no_grad():
        torch.testing.assert_close(wrapped(pixels), model(Normalization().apply(pixels / 255)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("given", "training_data", "trained", "spec", "warns"),
    [
        ("npy:/x.npy", "folder:/absent", True, "npy:/x.npy", False),  # what the user says wins
        (None, "synthetic:4000", True, "synthetic:4000", False),  # the shipped model's own data
        (None, "folder:{tmp}", True, "folder:{tmp}", False),  # a checkpoint's folder that is there
        (None, "folder:/absent/shapes", True, "synthetic", True),  # ... and one that is gone
        (None, None, True, "synthetic", True),  # a trained model that names no data
        (None, None, False, "synthetic", False),  # random weights: nothing to calibrate for
    ],
)
def test_export_data_defaults_to_the_models_own_and_warns_otherwise(tmp_path, given, training_data, trained, spec, warns):
    from nlpool.flow.export_flow import ExportOptions, ModelToExport, choose_data

    def fill(text: str | None) -> str | None:
        return text.format(tmp=tmp_path) if text else text

    source = ModelToExport(TinyNet(), SIZE, 3, {}, "w", trained, training_data=fill(training_data))
    chosen, warning = choose_data(ExportOptions("cortex-m7", 1 << 16, tmp_path, calib_data=given), source)
    assert chosen == fill(spec) and (warning is not None) == warns
    if warns:
        assert "--calib-data" in warning and "\n" not in warning


def test_train_on_a_folder_then_export_uses_it_and_names_the_classes(tmp_path):
    """The path every real user takes: `nlpool train --data folder:` then `nlpool export --checkpoint`
    with no data flag calibrates and measures on that folder, and the class names reach the firmware."""
    from conftest import run_cli

    root = write_shapes_folder(tmp_path / "shapes", {"train": 6, "val": 4})
    checkpoint = tmp_path / "shapes.pt"
    code, _, err = run_cli(["train", "--data", f"folder:{root}", "--input-size", "64", "--num-classes", "3",
                            "--epochs", "1", "--batch-size", "6", "--out", str(checkpoint)])
    assert code == 0, err
    assert training_record(checkpoint).class_names == SHAPE_CLASSES
    out = tmp_path / "out"
    code, _, err = run_cli(["export", "--checkpoint", str(checkpoint), "--target", "cortex-m7", "--sram", "512k",
                            "--out", str(out), "--no-run", "--calib-samples", "8"])
    assert code == 0, err
    assert f"data folder:{root}" in err and "warning" not in err
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["calibration"]["source"] == f"folder {root}, train split"
    assert report["data"]["fidelity"]["samples"] == 12 and report["data"]["class_names"] == list(SHAPE_CLASSES)
    assert "accuracy" in report["fidelity"]["tflite_int8_fused"]
    assert '"checker", "disc", "stripes"' in (out / "firmware_aot" / HEADER).read_text()
