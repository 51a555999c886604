"""`nlpool visualize`: Grad-CAM and pooling-weight heat maps per pooling layer (paper Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import click

from nlpool.core.checks import SEED_RANGE, number, output_path, range_text
from nlpool.core.errors import NlpoolError

from ..checkpoint import load_model
from ..data import denormalize, eval_transform, synthetic_batch
from ..device import configure_threads, resolve_device
from ..visualize import DEFAULT_DPI, DPI_RANGE, SYNTHETIC_IMAGES_RANGE, compute_maps, draw_figure, load_image, save_figure
from .device_options import device_options


@click.command("visualize")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Checkpoint written by `nlpool train` (nlp pooling in the paper's figure).")
@click.option("--checkpoint-lip", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A second checkpoint shown beside the first (LIP pooling in the paper's figure; any kind works).")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None, help="An image file (PNG or JPEG).")
@click.option("--synthetic", type=int, default=None,
              help=f"Use the first N images of the seeded synthetic validation split ({range_text(SYNTHETIC_IMAGES_RANGE)}).")
@click.option("--seed", type=int, default=0, show_default=True, help=f"Seed of the synthetic images ({range_text(SEED_RANGE)}).")
@click.option("--target-class", type=int, default=None, help="Class whose gradient Grad-CAM follows (default: the predicted one).")
@click.option("--dpi", type=int, default=DEFAULT_DPI, show_default=True,
              help=f"Pixels per inch of the PNG ({range_text(DPI_RANGE)}; cells are 1.6 in).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
@device_options
def visualize_command(
    checkpoint: Path, checkpoint_lip: Path | None, image: Path | None, synthetic: int | None, seed: int,
    target_class: int | None, dpi: int, out: Path, device: str, threads: int | None,
) -> None:
    """Overlay each pooling layer's Grad-CAM and pooling weights pi on the input (fp32 on any device)."""
    if (image is None) == (synthetic is None):
        raise NlpoolError("pass exactly one of --image PATH or --synthetic N")
    out = output_path("--out", out, suffix=".png")  # before any model is loaded: a bad --out costs nothing
    if synthetic is not None:
        number("--synthetic", synthetic, *SYNTHETIC_IMAGES_RANGE)
    number("--dpi", dpi, *DPI_RANGE)
    number("--seed", seed, *SEED_RANGE)
    configure_threads(threads)
    chosen = resolve_device(device)
    raw = load_image(image) if image is not None else None
    pictures, panels, labels = [], [], []
    for path in (checkpoint, checkpoint_lip):
        if path is None:
            continue
        model, cfg = load_model(path)
        if raw is not None:
            inputs = eval_transform(raw, cfg.input_size)[None]
            labels.append(None)
        else:
            inputs, truth = synthetic_batch(synthetic, cfg.input_size, cfg.num_classes, seed, "val")
            labels.append(truth.tolist())
        panels.append(compute_maps(model.to(chosen), cfg, inputs.to(chosen), target_class))
        pictures.append(denormalize(inputs))
    written = save_figure(draw_figure(pictures, panels, labels, dpi), out)
    for panel in panels:
        click.echo(f"{panel.title}: predicted {panel.predictions}, pooling layers {[layer.name for layer in panel.layers]}")
    click.echo(f"wrote {written}")
