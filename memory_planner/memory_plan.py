"""`MemoryPlan`: everything the planner knows about one graph, and the two ways to get one.

`plan_tflite(path)` plans a .tflite file (offsets are per TFLite tensor index, for firmware);
`plan_model(model, cfg)` plans a PyTorch model at int8 sizes without running TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpool.core.tflite import TfliteModel, read_model

from .from_tflite import graph_from_model
from .graph import Graph
from .lifetimes import live_bytes_per_step, tensor_lifetimes
from .names import op_label
from .plans import ArenaPlan, best_plan, lower_bound, naive_bytes
from .tflm_model import TflmPrediction, predict_tflm


@dataclass(frozen=True)
class LayerRecord:
    """One op step: what runs, what it writes, and the activation bytes resident while it runs."""

    step: int
    kind: str
    name: str
    output_shape: tuple[int, ...]
    output_bytes: int
    live_bytes: int
    peak: bool
    scratch_bytes: int = 0  # the kernel's scratch (NLPOOL_ATTENTION's, CMSIS-NN's buffers), part of live_bytes


@dataclass(frozen=True)
class MemoryPlan:
    """Plans and per-layer records of one graph.

    Attributes:
        graph: the planning graph (ops in execution order, tensors).
        best: the smallest arena plan found (offsets per tensor index, 16-byte aligned).
        tflm: TFLM's arena as predicted (`head_bytes` = its planned tensor part).
        lower_bound: max over steps of the bytes that must be resident; no plan is smaller.
        naive: every activation in its own memory.
        layers: one record per op step; the step with the most live bytes has `peak=True`.
    """

    graph: Graph
    best: ArenaPlan
    tflm: TflmPrediction
    lower_bound: int
    naive: int
    layers: tuple[LayerRecord, ...]

    @property
    def peak_bytes(self) -> int:
        """The arena the best plan needs: what has to fit in SRAM."""
        return self.best.arena_bytes

    @property
    def peak_layer(self) -> LayerRecord:
        return next(r for r in self.layers if r.peak)

    @property
    def flash_bytes(self) -> int:
        return self.graph.flash_bytes

    def scratch_slots(self) -> dict[int, tuple[int, int]]:
        """Op index -> (arena offset, bytes) of the scratch memory of every op whose kernel has one."""
        return {op.index: (self.best.offsets[t], self.graph.tensors[t].nbytes) for op in self.graph.ops for t in op.scratch}

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.graph.name,
            "source": self.graph.source,
            "ops": len(self.graph.ops),
            "activation_tensors": len(self.graph.activations),
            "peak_bytes": self.peak_bytes,
            "best_strategy": self.best.strategy,
            "in_place_ops": len(self.best.aliases),
            "lower_bound_bytes": self.lower_bound,
            "plan_over_lower_bound": round(self.peak_bytes / self.lower_bound, 4) if self.lower_bound else None,
            "naive_bytes": self.naive,
            "alignment": self.best.alignment,
            "flash_bytes": self.flash_bytes,
            "peak_layer": op_label(self.peak_layer.kind, self.peak_layer.step, self.peak_layer.name),
            "peak_layer_full_name": self.peak_layer.name,
            "peak_step": self.peak_layer.step,
            "peak_kind": self.peak_layer.kind,
            "tflm": self.tflm.as_dict(),
        }


def build_plan(graph: Graph, inplace: bool = True) -> MemoryPlan:
    """Lifetimes, every plan and the per-layer records of `graph`.

    `inplace=False` keeps every tensor in memory of its own in the best plan (for runtimes whose
    kernels cannot write over their input). With `inplace`, an op with an in-place kernel
    (`Op.inplace_scratch`: the stride-1 depthwise convolutions) is switched to it while it is the
    peak and the switch lowers the arena: only there, since its kernel is slower than the ones it
    replaces (CMSIS-NN's). A PAD its convolution can do (`Op.folds_into`) is folded into it.
    `MemoryPlan.graph` is the graph as planned (`Op.inplace`, `Op.folded` mark them); `tflm` predicts
    TFLM's arena for the graph as given: TFLM's kernels neither fold nor work in place.
    """
    tflm = predict_tflm(graph)
    graph = graph.with_folded_pads()
    plan = _plan_graph(graph, inplace, tflm)
    while inplace:
        op = graph.ops[max(plan.layers, key=lambda r: r.live_bytes).step] if plan.layers else None
        if op is None or op.inplace or not op.inplace_scratch:
            return plan
        candidate = _plan_graph(graph.with_inplace(op.index), inplace, tflm)
        if candidate.best.arena_bytes >= plan.best.arena_bytes or op.index not in {a[0] for a in candidate.best.aliases}:
            return plan
        graph, plan = candidate.graph, candidate
    return plan


def _plan_graph(graph: Graph, inplace: bool, tflm: TflmPrediction) -> MemoryPlan:
    live = live_bytes_per_step(graph)
    for op in graph.ops:  # an in-place kernel's input and output share their bytes at its step
        if op.inplace:
            live[op.index] -= graph.tensors[op.inputs[0]].nbytes
    peak_step = max(range(len(live)), key=lambda s: live[s]) if graph.ops else 0
    spans = tensor_lifetimes(graph)
    layers = []
    for op in graph.ops:
        outputs = [t for t in op.outputs if t in spans]
        first = graph.tensors[outputs[0]] if outputs else None
        layers.append(
            LayerRecord(
                step=op.index,
                kind=op.kind,
                name=op.name,
                output_shape=first.shape if first else (),
                output_bytes=sum(graph.tensors[t].nbytes for t in outputs),
                live_bytes=live[op.index],
                peak=op.index == peak_step,
                scratch_bytes=sum(graph.tensors[t].nbytes for t in op.scratch),
            )
        )
    return MemoryPlan(
        graph=graph,
        best=best_plan(graph, inplace=inplace),
        tflm=tflm,
        lower_bound=lower_bound(graph),
        naive=naive_bytes(graph),
        layers=tuple(layers),
    )


def plan_tflite(model: str | Path | TfliteModel, inplace: bool = True, kernel_scratch: Mapping[int, int] | None = None,
                tflm_kernel_data: Mapping[int, tuple[int, ...]] | None = None) -> MemoryPlan:
    """Plan a .tflite file, or a model already read; `best.offsets` are keyed by TFLite tensor index (subgraph 0).

    `kernel_scratch` (op position -> bytes) is scratch memory the runtime's kernels need beyond what
    the model's own ops declare, e.g. CMSIS-NN's convolution buffers; it is planned in the arena.
    `tflm_kernel_data` (op position -> persistent buffer sizes) is what TFLM's kernels keep per op for
    the kernel set and core the arena is predicted for (`tflm_model.builtin_kernel_data`; reference
    kernels by default).
    """
    read = model if isinstance(model, TfliteModel) else read_model(model)
    return build_plan(graph_from_model(read, kernel_scratch, tflm_kernel_data), inplace=inplace)


def plan_model(model: Any, cfg: Any) -> MemoryPlan:
    """Plan a PyTorch model (int8 sizes) from one recorded forward pass at `cfg.input_size`."""
    from .from_torch import graph_from_torch

    name = f"{cfg.arch}-{cfg.width}x-{cfg.pool}-s1={cfg.s1}-{cfg.input_size}px"
    return build_plan(graph_from_torch(model, cfg.input_size, name=name))
