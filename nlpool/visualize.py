"""Heat maps of what each pooling layer attends to (paper Fig. 4): Grad-CAM and the pooling weights pi.

Grad-CAM (Selvaraju et al., 2017) at a pooling layer's output: weight each channel by the mean
gradient of the target logit, sum, ReLU. It shows where the *decision* draws on that layer. The pooling
weights pi (`pool_weights` of the nlp and LIP layers, averaged over channels) show what the layer itself
emphasises inside each window; with non-local pooling they can follow content far from the window.

Figure layout (so its pixel size is known in advance): one panel per model, side by side; in a panel
one column for the input plus one per pooling layer, and two rows per image (Grad-CAM, then pi).
Every cell is `CELL_INCHES` square; a header strip of `HEADER_INCHES` holds the panel titles.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from nlpool.core.checks import input_file, output_path
from nlpool.core.errors import NlpoolError

from .models import ModelConfig

CELL_INCHES = 1.6
HEADER_INCHES = 0.6
DEFAULT_DPI = 100
DPI_RANGE = (20, 600)  # below 20 the cells are a few pixels; above 600 a 16-image figure runs to hundreds of megapixels
SYNTHETIC_IMAGES_RANGE = (1, 16)  # rows of one figure


@dataclass
class LayerMaps:
    """Maps of one pooling layer for a batch, each (B, S, S) at the input resolution, in [0, 1]."""

    name: str
    map_size: int  # side of the map the pooling layer sees
    grad_cam: torch.Tensor
    weights: torch.Tensor | None  # normalised pi, None for layers without pooling weights
    weight_ranges: list[tuple[float, float]] | None  # per image: min / max of the channel-mean pi


@dataclass
class ModelMaps:
    """Everything drawn for one model: its title, predictions and the maps of every pooling layer."""

    title: str
    predictions: list[int]
    targets: list[int]
    layers: list[LayerMaps]


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as (3, H, W) float RGB in [0, 1] (PNG natively; JPEG and others through Pillow)."""
    from matplotlib.image import imread

    path = input_file("image", path, "pass an existing PNG or JPEG file to --image")
    try:
        array = imread(path)
    except Exception as err:  # Pillow and matplotlib raise many types for unreadable files
        raise NlpoolError(f"image {path} cannot be read ({type(err).__name__}): pass a PNG or JPEG file") from None
    image = torch.from_numpy(array.copy())
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if image.dim() == 2:
        image = image[..., None].expand(-1, -1, 3)
    return image[..., :3].permute(2, 0, 1).contiguous()


def pooling_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The down-sampling pooling units of `model.features`, in network order."""
    return [(name, unit) for name, unit in model.features.named_children() if name.endswith("_pool")]


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Scale each (H, W) map of a (B, H, W) batch to [0, 1].

    A map whose spread is below 1e-6 of its magnitude is constant up to rounding and becomes 0, so
    float noise is never stretched into a pattern.
    """
    flat = maps.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    spread = high - low
    flat_maps = spread <= 1e-6 * torch.maximum(high.abs(), low.abs()).clamp_min(1e-30)
    return torch.where(flat_maps, torch.zeros_like(maps), (maps - low) / spread.clamp_min(1e-30))


def compute_maps(model: nn.Module, cfg: ModelConfig, images: torch.Tensor, target_class: int | None = None) -> ModelMaps:
    """Grad-CAM and pooling weights of every pooling layer for normalised `images` (B, 3, S, S).

    The gradient is that of the given class, or of each image's predicted class.
    """
    layers = pooling_layers(model)
    if not layers:
        raise NlpoolError(
            f"the model has no pooling layers (pool={cfg.pool}): visualize a model trained with --pool nlp|lip|gaussian|rnnpool|max|avg"
        )
    if target_class is not None and not 0 <= target_class < cfg.num_classes:
        raise NlpoolError(f"--target-class {target_class} is outside the model's {cfg.num_classes} classes: use 0..{cfg.num_classes - 1}")
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def keep_input(name: str):
        return lambda _module, args: inputs.__setitem__(name, args[0].detach())

    def keep_output(name: str):
        def hook(_module: nn.Module, _args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            output.retain_grad()
            outputs[name] = output

        return hook

    handles = [unit.register_forward_pre_hook(keep_input(name)) for name, unit in layers]
    handles += [unit.register_forward_hook(keep_output(name)) for name, unit in layers]
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(images.requires_grad_(False))
            predictions = logits.argmax(1)
            targets = predictions if target_class is None else torch.full_like(predictions, target_class)
            model.zero_grad(set_to_none=True)
            logits.gather(1, targets[:, None]).sum().backward()
    finally:
        for handle in handles:
            handle.remove()

    size = images.shape[-1]
    maps = []
    with torch.no_grad():
        for name, unit in layers:
            activation, grad = outputs[name].detach(), outputs[name].grad
            cam = _normalise(F.relu((grad.mean((2, 3), keepdim=True) * activation).sum(1)))  # at the layer's resolution
            cam = F.interpolate(cam[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
            weights = weight_ranges = None
            if hasattr(unit, "pool_weights"):
                pi = unit.pool_weights(inputs[name]).mean(1, keepdim=True)
                weight_ranges = list(zip(pi.flatten(1).min(1).values.tolist(), pi.flatten(1).max(1).values.tolist(), strict=True))
                weights = F.interpolate(_normalise(pi[:, 0])[:, None], size=(size, size), mode="nearest")[:, 0]
            maps.append(LayerMaps(name, inputs[name].shape[-1], cam.cpu(), None if weights is None else weights.cpu(), weight_ranges))
    title = f"{cfg.arch}-{cfg.width}x {cfg.pool} s1={cfg.s1} ({cfg.placement})"
    return ModelMaps(title, predictions.tolist(), targets.tolist(), maps)


def figure_pixels(columns_per_model: list[int], num_images: int, dpi: int = DEFAULT_DPI) -> tuple[int, int]:
    """(width, height) in pixels of the figure `draw_figure` makes."""
    width = sum(columns_per_model) * CELL_INCHES
    height = 2 * num_images * CELL_INCHES + HEADER_INCHES
    return round(width * dpi), round(height * dpi)


def draw_figure(
    pictures: list[torch.Tensor], panels: list[ModelMaps], labels: list[list[int] | None], dpi: int = DEFAULT_DPI
) -> Figure:
    """One panel per model: per image a Grad-CAM row and a pooling-weight row, overlaid on the input.

    `pictures[k]` are the un-normalised (B, 3, S, S) images in [0, 1] model k saw, `labels[k]` their
    true labels when known.
    """
    columns = [1 + len(panel.layers) for panel in panels]
    num_images = pictures[0].shape[0]
    width, height = figure_pixels(columns, num_images, dpi)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    subfigs = fig.subfigures(1, len(panels), width_ratios=columns, squeeze=False)[0]
    for subfig, panel, picture, truths, ncols in zip(subfigs, panels, pictures, labels, columns, strict=True):
        subfig.suptitle(panel.title, fontsize=10, y=1 - 0.25 * HEADER_INCHES / (height / dpi))
        top = 1 - HEADER_INCHES / (height / dpi)
        axes = subfig.subplots(2 * num_images, ncols, squeeze=False, gridspec_kw={"top": top, "bottom": 0.01, "left": 0.02,
                                                                                  "right": 0.98, "hspace": 0.3, "wspace": 0.05})
        for index in range(num_images):
            rgb = picture[index].permute(1, 2, 0).clamp(0, 1).numpy()
            cam_row, pi_row = axes[2 * index], axes[2 * index + 1]
            truth = f" / label {truths[index]}" if truths is not None else ""
            for ax, caption in ((cam_row[0], f"pred {panel.predictions[index]}{truth}"), (pi_row[0], "pooling weights π")):
                ax.imshow(rgb)
                ax.set_title(caption, fontsize=7)
            cam_row[0].set_ylabel(f"Grad-CAM (class {panel.targets[index]})", fontsize=7)
            for column, layer in enumerate(panel.layers, start=1):
                cam_row[column].imshow(rgb)
                cam_row[column].imshow(layer.grad_cam[index].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
                cam_row[column].set_title(f"{layer.name} ({layer.map_size}²)", fontsize=7)
                if layer.weights is None:
                    pi_row[column].text(0.5, 0.5, "no pooling\nweights", ha="center", va="center", fontsize=7)
                else:
                    pi_row[column].imshow(rgb)
                    pi_row[column].imshow(layer.weights[index].numpy(), cmap="viridis", alpha=0.6, vmin=0, vmax=1)
                    low, high = layer.weight_ranges[index]
                    pi_row[column].set_title(f"π in [{low:.2f}, {high:.2f}]", fontsize=7)
            for ax in (*cam_row, *pi_row):
                ax.set_xticks([])
                ax.set_yticks([])
    return fig


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write the PNG through a temporary file and an atomic rename (nothing half-written)."""
    out = output_path("--out", out, suffix=".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    except OSError as err:  # the CLI checked --out up front; this is the folder changing since
        raise NlpoolError(f"cannot write {out} ({err.strerror}): pass --out in a writable folder") from None
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=fig.dpi, format="png")
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it 0600; the user's umask decides
        os.replace(tmp, out)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise NlpoolError(f"cannot write {out} ({err.strerror}): free some space or pass another --out") from None
        raise
    return out
