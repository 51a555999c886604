"""Why `--calib-data` exists: int8 accuracy on a user's own images, calibrated on them vs on synthetic images.

Writes an image folder of dark, low-contrast shapes (nlpool.data.shapes), trains a model on it with
`nlpool.train`, then exports it twice without firmware: calibrated on its own training split (the
default for a checkpoint trained on a folder) and calibrated on the synthetic task (what every export
did before). Both int8 models are measured on the folder's validation split against PyTorch.

    .venv/bin/python benchmarks/calibration_data.py [--epochs 8] [--size 64] [--per-class 200]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from export.host_run import HostModel
from nlpool.checkpoint import load_model, training_record
from nlpool.data import SHAPE_CLASSES, export_images, write_shapes_folder
from nlpool.flow.export_flow import ExportOptions, ModelToExport, export_model
from nlpool.models import ModelConfig
from nlpool.train import TrainSettings, train


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="input size in pixels")
    parser.add_argument("--per-class", type=int, default=200, help="training images per class (validation: half)")
    parser.add_argument("--noise", type=float, default=12.0, help="sensor noise std of the rendered photos")
    parser.add_argument("--contrast", type=int, default=25, help="how many levels brighter the pattern is than its background")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="nlpool-calib-bench-") as tmp:
        root = write_shapes_folder(Path(tmp) / "shapes", {"train": args.per_class, "val": args.per_class // 2},
                                   noise=args.noise, contrast=args.contrast)
        cfg = ModelConfig(input_size=args.size, num_classes=len(SHAPE_CLASSES))
        checkpoint = Path(tmp) / "shapes.pt"
        train(cfg, TrainSettings(data=f"folder:{root}", epochs=args.epochs, batch_size=32, lr=0.02, schedule="cosine"), checkpoint)
        model, cfg = load_model(checkpoint)
        source = ModelToExport.from_config(model, cfg, str(checkpoint), True, training_record(checkpoint))
        val = export_images(f"folder:{root}", cfg.input_size, cfg.num_classes, 1, 10_000).fidelity
        inputs = source.normalization.apply(val.pixels)
        labels = val.labels.numpy()
        with torch.no_grad():
            pytorch = model(inputs).numpy()
        nhwc = inputs.permute(0, 2, 3, 1).numpy()
        rows = []
        for name, spec in (("own training images (folder)", None), ("synthetic images", "synthetic")):
            out = Path(tmp) / f"out-{spec or 'own'}"
            export_model(source, ExportOptions("cortex-m7", 512 << 10, out, calib_data=spec, run_firmware=False), echo=lambda _line: None)
            host = HostModel(out / "model_int8_fused.tflite")
            rows.append((name, accuracy(host.predict(nhwc), labels), accuracy(host.predict(nhwc), pytorch.argmax(axis=1))))
    print(f"MobileNetV2-0.35x nlp s1=2, {args.size} px, {args.epochs} epochs on {args.per_class} images/class "
          f"(noise {args.noise}, contrast {args.contrast}); {len(labels)} validation images")
    print(f"{'calibrated on':<30}{'int8 accuracy':>15}{'top-1 agreement':>17}")
    print(f"{'(PyTorch float)':<30}{accuracy(pytorch, labels) * 100:>14.1f}%{'':>17}")
    for name, acc, agreement in rows:
        print(f"{name:<30}{acc * 100:>14.1f}%{agreement * 100:>16.1f}%")


if __name__ == "__main__":
    main()
