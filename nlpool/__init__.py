"""nlpool: self-attentive (non-local) pooling networks, from PyTorch to Cortex-M.

The package root is the user's front door: `nlpool.export_model(model, input_size, target=..., sram=...)`
and `nlpool.plan_model(model, input_size, sram=...)` take any network built from nlpool's layers
through the same steps as `nlpool export` / `nlpool plan`. They are loaded on first use, so importing
the layers or models (`import nlpool.layers`) does not pull in TensorFlow.
"""

from .core import VERSION as __version__

_API = ("export_model", "plan_model", "ExportReport", "PlanReport")


def __getattr__(name: str) -> object:
    if name in _API:
        from .flow import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
