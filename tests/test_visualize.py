"""`nlpool visualize`: a PNG of the documented size from tiny checkpoints, and the maps behind it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from matplotlib.image import imread, imsave

from nlpool.checkpoint import save_checkpoint
from nlpool.data import synthetic_batch
from nlpool.models import ModelConfig, build_model
from nlpool.visualize import compute_maps

NLP = ModelConfig(pool="nlp", s1=1, input_size=32)  # pooling layers: stage2, 3, 4, 6 -> 5 columns of 160 px
LIP = ModelConfig(pool="lip", s1=1, input_size=32)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random checkpoints with batch-norm statistics of one batch (so activations are not ~0)."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name, cfg in (("nlp", NLP), ("lip", LIP), ("strided", ModelConfig(pool="strided", s1=1, input_size=32))):
        torch.manual_seed(0)
        model = build_model(cfg)
        with torch.no_grad():
            model.train()(torch.randn(4, 3, 32, 32))
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(paths[name], model.eval(), cfg)
    return paths




def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_side_by_side_png_has_the_documented_size(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "maps.png"
    code, stdout, stderr = run_cli(
        ["visualize", "--checkpoint", str(checkpoints["nlp"]), "--checkpoint-lip", str(checkpoints["lip"]),
         "--synthetic", "2", "--out", str(out)]
    )
    assert code == 0, stderr
    # two panels of (1 input + 4 pooling layers) columns of 1.6 in, 2 rows per image, 0.6 in header, 100 dpi
    assert _png_size(out) == (2 * 5 * 160, 2 * 2 * 160 + 60)
    assert "stage2_pool" in stdout and "lip" in stdout
    pixels = imread(out)
    assert pixels[..., :3].std() > 0.05  # something was drawn
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_single_image_file(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / "input.png"
    imsave(image, torch.rand(40, 50, 3).numpy())
    out = tmp_path / "one.png"
    args = ["visualize", "--checkpoint", str(checkpoints["nlp"]), "--image", str(image), "--dpi", "50", "--out", str(out)]
    code, _, stderr = run_cli(args)
    assert code == 0, stderr
    assert _png_size(out) == (5 * 80, 2 * 80 + 30)


def test_maps_are_normalised_and_the_weights_are_the_layers_own(checkpoints: dict[str, Path]) -> None:
    from nlpool.checkpoint import load_model

    model, cfg = load_model(checkpoints["nlp"])
    images, _ = synthetic_batch(2, 32, 10, seed=0)
    maps = compute_maps(model, cfg, images, target_class=3)
    assert [layer.name for layer in maps.layers] == ["stage2_pool", "stage3_pool", "stage4_pool", "stage6_pool"]
    assert maps.targets == [3, 3]
    for layer in maps.layers:
        assert layer.grad_cam.shape == layer.weights.shape == (2, 32, 32)
        assert float(layer.grad_cam.min()) >= 0 and float(layer.grad_cam.max()) <= 1
        for low, high in layer.weight_ranges:
            assert 1 <= low <= high <= torch.e + 1e-6  # pi = exp(sigmoid(.)) lies in [1, e]
    # the stage-2 weights are the layer's pool_weights on its input, averaged over channels
    captured = {}
    handle = model.features.stage2_pool.register_forward_pre_hook(lambda _m, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        model(images)
        handle.remove()
        pi = model.features.stage2_pool.pool_weights(captured["x"]).mean(1)
    assert maps.layers[0].weight_ranges[1] == pytest.approx((float(pi[1].min()), float(pi[1].max())), rel=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--synthetic", "1", "--image", "x.png"], "exactly one of --image"),
        (["--synthetic", "1", "--out", "maps.jpg"], "must end in .png"),
        (["--image", "missing.png"], "does not exist"),
    ],
)
def test_bad_input_is_a_one_line_error(checkpoints: dict[str, Path], tmp_path: Path, args: list[str], message: str) -> None:
    full = ["visualize", "--checkpoint", str(checkpoints["nlp"]), *args]
    if "--out" not in args:
        full += ["--out", str(tmp_path / "maps.png")]
    code, _, stderr = run_cli(full)
    assert code == 1 and message in stderr and stderr.count("\n") == 1


def test_model_without_pooling_layers_is_refused(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    args = ["visualize", "--checkpoint", str(checkpoints["strided"]), "--synthetic", "1", "--out", str(tmp_path / "m.png")]
    code, _, stderr = run_cli(args)
    assert code == 1 and "no pooling layers" in stderr
    assert not (tmp_path / "m.png").exists()
