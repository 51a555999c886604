"""The Python API (nlpool.plan_model, nlpool.export_model): a custom CNN with two SelfAttentivePool
layers, trained on its own folder of images, planned and taken to firmware (also fed camera bytes,
rgb888); bad arguments are one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from custom_cnn import CLASSES, SIZE, TinyNet
from torch import nn

import nlpool
from firmware.common import HEADER
from nlpool.core.errors import NlpoolError
from nlpool.data import Normalization, export_images
from nlpool.data.shapes import write_shapes_folder


def _train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 150) -> nn.Module:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = torch.arange(step * 16, step * 16 + 16) % len(images)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    root = write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", {"train": 40, "val": 50})
    data = export_images(f"folder:{root}", SIZE, len(CLASSES), 120, 150)
    normalization = Normalization()
    torch.manual_seed(0)
    model = _train(TinyNet(), normalization.apply(data.calibration.pixels), data.calibration.labels)
    return model, root


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm (scripts/setup.sh)")
def test_python_api_exports_a_custom_cnn_on_its_own_data_to_firmware(trained, tmp_path):
    """The custom CNN through every step: calibrated on its folder, bit-exact firmware on QEMU, the
    int8 accuracy on its own validation split within a point of PyTorch's, class names in the projects."""
    model, root = trained
    plan = nlpool.plan_model(model, SIZE, sram="64k")
    assert plan.fits and plan.peak_bytes > 0 and plan.layers
    report = nlpool.export_model(model, SIZE, target="cortex-m7", sram="256k", calib=f"folder:{root}",
                                 out=tmp_path / "out", class_names=CLASSES, firmware_inputs=30)
    assert report.data["calibration"]["source"].startswith(f"folder {root}")
    assert report.tflite_int8_fused["custom_ops"] == 2
    assert report.firmware["bitexact_vs_host"] and report.firmware["bitexact_vs_reference"]
    fidelity = report.fidelity
    assert fidelity["pytorch"]["accuracy"] > 0.8  # the tiny net learned the shapes

    assert abs(fidelity["tflite_int8_fused"]["accuracy"] - fidelity["pytorch"]["accuracy"]) <= 0.01
    assert report.firmware["accuracy_on_labels"] is not None
    for project in ("firmware_aot", "firmware_tflm"):
        header = (tmp_path / "out" / project / HEADER).read_text()
        assert '"checker", "disc", "stripes"' in header
        assert "2: stripes" in (tmp_path / "out" / project / "README.md").read_text()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host C compiler")
def test_rgb888_export_takes_camera_bytes(trained, tmp_path):
    """--input-format rgb888: the int8 input is pixel - 128 and the C helper maps camera bytes to it;
    the firmware fed those bytes agrees with the float pipeline fed normalised floats."""
    model, root = trained
    report = nlpool.export_model(model, SIZE, target="cortex-m7", sram="256k", calib=f"folder:{root}",
                                 out=tmp_path / "out", input_format="rgb888", firmware_inputs=100)
    assert report.firmware["input"]["int8_is_pixel_minus_128"], report.firmware["input"]
    assert report.firmware["bitexact_vs_reference"] and report.firmware["top1_agreement_vs_pytorch"] >= 0.99
    frame = np.random.default_rng(1).integers(0, 256, size=SIZE * SIZE * 3, dtype=np.uint8)
    program = tmp_path / "convert.c"
    program.write_text(f'#include <stdio.h>\n#include "{HEADER}"\nint main(void) {{ static uint8_t rgb[{frame.size}];'
                       f" static int8_t input[{frame.size}]; fread(rgb, 1, sizeof rgb, stdin);"
                       " nlpool_input_from_rgb888(rgb, input); fwrite(input, 1, sizeof input, stdout); return 0; }\n")
    binary = tmp_path / "convert"
    subprocess.run(["gcc", "-std=c99", "-O2", "-I", str(tmp_path / "out" / "firmware_aot"), str(program), "-o", str(binary)], check=True)
    converted = subprocess.run([str(binary)], input=frame.tobytes(), capture_output=True, check=True).stdout
    np.testing.assert_array_equal(np.frombuffer(converted, np.int8), frame.astype(np.int16) - 128)


def test_api_rejects_bad_arguments_in_one_line():
    with pytest.raises(NlpoolError, match=r"torch\.nn\.Module"):
        nlpool.plan_model("not a model", SIZE, sram="64k")
    with pytest.raises(NlpoolError, match="not a memory size"):
        nlpool.plan_model(TinyNet(), SIZE, sram="lots")
    with pytest.raises(NlpoolError, match="unknown target"):
        nlpool.export_model(TinyNet(), SIZE, target="cortex-a53", sram="64k")
