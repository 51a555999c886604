"""How closely each exported model reproduces PyTorch: error, cosine and top-1 agreement on logits."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def compare(reference: np.ndarray, result: np.ndarray) -> dict[str, float]:
    """Metrics of `result` against `reference`, both (N, classes).

    cosine is the mean over samples of the per-sample cosine similarity (min_cosine the worst sample);
    top1_agreement is the fraction of samples whose arg-max class matches PyTorch's.
    """
    reference, result = reference.reshape(len(reference), -1).astype(np.float64), result.reshape(len(result), -1).astype(np.float64)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(result, axis=1)
    cosines = np.where(norms > 0, (reference * result).sum(axis=1) / np.maximum(norms, 1e-300), 0.0)
    error = np.abs(reference - result)
    return {
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "cosine": float(cosines.mean()),
        "min_cosine": float(cosines.min()),
        "top1_agreement": float((reference.argmax(axis=1) == result.argmax(axis=1)).mean()),
    }


def fidelity_report(
    reference: np.ndarray, runners: dict[str, Callable[[], np.ndarray]], labels: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """{name: metrics} for every runner (called once; returns logits for the same inputs as `reference`).

    With `labels`, each entry also gets its `accuracy`, and a "pytorch" entry holds PyTorch's own: a
    top-1 flip that does not change accuracy is a near-tie, not a broken export.
    """
    report = {}
    if labels is not None:
        report["pytorch"] = {"accuracy": float((reference.argmax(axis=1) == labels).mean())}
    for name, run in runners.items():
        logits = run()
        report[name] = compare(reference, logits)
        if labels is not None:
            report[name]["accuracy"] = float((logits.argmax(axis=1) == labels).mean())
    return report


def format_table(report: dict[str, dict[str, float]], samples: int) -> str:
    """The fidelity report as an aligned text table."""
    header = f"{'vs PyTorch (' + str(samples) + ' inputs)':<26}{'max |err|':>12}{'mean |err|':>12}{'cosine':>10}{'min cos':>10}{'top-1':>9}"
    header += f"{'accuracy':>10}"
    rows = [header, "-" * len(header)]
    for name, m in report.items():
        accuracy = f"{m['accuracy'] * 100:>9.1f}%" if "accuracy" in m else ""
        if "note" in m:
            rows.append(f"{name:<26}{m['note']}")
            continue
        if "top1_agreement" not in m:
            rows.append(f"{name:<26}{'':>53}{accuracy}")
            continue
        rows.append(
            f"{name:<26}{m['max_abs_error']:>12.4g}{m['mean_abs_error']:>12.4g}{m['cosine']:>10.5f}{m['min_cosine']:>10.5f}"
            f"{m['top1_agreement'] * 100:>8.1f}%{accuracy}"
        )
    return "\n".join(rows)
