"""Arena plans: an offset for every activation tensor such that tensors live at the same time never
share bytes, and the arena size that follows.

- `greedy_by_size`: TFLM's strategy (largest buffer first, each at the lowest offset that does not
  collide with an already placed buffer live at the same time). `tflm_model` builds on it.
- `best_plan`: the smallest of several orderings of that first-fit placement, with and without
  in-place reuse where an op allows it (see `lifetimes.inplace_pairs`).
- `lower_bound`: no plan can use less than the bytes that must be resident at its busiest step.
- `naive_bytes`: every activation in its own memory, for reference.

All offsets are multiples of `ALIGNMENT` (16 bytes: TFLM's buffer alignment, and enough for any
Cortex-M load/store including MVE vectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .graph import Graph
from .lifetimes import Buffer, align, live_bytes_per_step, make_buffers

ALIGNMENT = 16


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of every activation tensor (by tensor index) in one arena of `arena_bytes`."""

    strategy: str
    offsets: dict[int, int]
    sizes: dict[int, int]
    arena_bytes: int
    alignment: int
    aliases: tuple[tuple[int, int, int], ...] = ()  # (op, input, output) written in place

    def check(self, graph: Graph) -> None:
        """Raise AssertionError when two tensors live at the same step overlap (aliases excepted)."""
        from .lifetimes import tensor_lifetimes

        spans = tensor_lifetimes(graph)
        shared = {frozenset((a, b)) for _op, a, b in self.aliases}
        items = sorted(self.offsets)
        for i, a in enumerate(items):
            assert self.offsets[a] % self.alignment == 0, f"tensor {a} misaligned"
            assert self.offsets[a] + graph.tensors[a].nbytes <= self.arena_bytes, f"tensor {a} outside the arena"
            for b in items[i + 1 :]:
                if frozenset((a, b)) in shared:
                    continue
                live_together = spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]
                apart = (
                    self.offsets[a] + graph.tensors[a].nbytes <= self.offsets[b]
                    or self.offsets[b] + graph.tensors[b].nbytes <= self.offsets[a]
                )
                if live_together and not apart:
                    raise AssertionError(f"tensors {a} and {b} are live together and overlap")


def conflicts(buffers: list[Buffer]) -> list[list[int]]:
    """For every buffer, the buffers live at some common step (a sweep over first steps)."""
    result: list[list[int]] = [[] for _ in buffers]
    active: list[int] = []
    for i in sorted(range(len(buffers)), key=lambda k: buffers[k].first):
        active = [j for j in active if buffers[j].last >= buffers[i].first]
        for j in active:
            result[i].append(j)
            result[j].append(i)
        active.append(i)
    return result


def first_fit(buffers: list[Buffer], order: list[int], clashes: list[list[int]] | None = None) -> tuple[list[int], int]:
    """Place buffers in `order`, each at the lowest offset clear of placed buffers live with it.

    Returns (offset per buffer, arena bytes). This is the placement rule of TFLM's greedy planner
    (scan the placed, simultaneously live buffers by offset; take the first gap that fits); only
    the order differs between strategies. `clashes` is `conflicts(buffers)`, passed when reused.
    """
    clashes = conflicts(buffers) if clashes is None else clashes
    offsets = [-1] * len(buffers)
    for i in order:
        size = buffers[i].size
        candidate = 0
        for offset, j in sorted((offsets[j], j) for j in clashes[i] if offsets[j] >= 0):
            if candidate + size <= offset:
                break
            candidate = max(candidate, offset + buffers[j].size)
        offsets[i] = candidate
    arena = max((offsets[i] + buffers[i].size for i in range(len(buffers))), default=0)
    return offsets, arena


def _plan(graph: Graph, buffers: list[Buffer], order: list[int], strategy: str, alignment: int, aliases, clashes=None) -> ArenaPlan:
    offsets, arena = first_fit(buffers, order, clashes)
    tensor_offsets = {t: offsets[i] for i, b in enumerate(buffers) for t in b.tensors}
    sizes = {t: graph.tensors[t].nbytes for t in tensor_offsets}
    return ArenaPlan(strategy, tensor_offsets, sizes, arena, alignment, tuple(aliases))


def greedy_by_size(graph: Graph, alignment: int = ALIGNMENT) -> ArenaPlan:
    """TFLM's order: size descending, ties in *reverse* buffer order (tensor index, then scratch).

    TFLM's GreedyMemoryPlanner fills its sort array from the back (buffers added in tensor-index
    order, scratch requests after them) and then runs a stable descending sort, so of two equal
    sizes the later buffer is placed first. It matters: MLPerf Tiny's VWW has two 48x48x8 tensors;
    placed in index order the plan was 64,512 B, TFLM's own order gives the 73,728 B it uses."""
    buffers = make_buffers(graph, alignment)
    return _plan(graph, buffers, tflm_order(buffers), "greedy-by-size", alignment, ())


def tflm_order(buffers: list[Buffer]) -> list[int]:
    """TFLM's placement order: size descending, of equal sizes the later buffer first."""
    return sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, -i))


ORDERINGS: dict[str, Callable[[Buffer], tuple]] = {
    "size": lambda b: (-b.size, b.first),
    "area": lambda b: (-b.size * (b.last - b.first + 1), -b.size),
    "lifetime": lambda b: (-(b.last - b.first), -b.size),
    "first-step": lambda b: (b.first, -b.size),
    "size-then-late": lambda b: (-b.size, -b.last),
}


def best_plan(graph: Graph, alignment: int = ALIGNMENT, inplace: bool = True) -> ArenaPlan:
    """The smallest arena over several placement orders, with in-place reuse if it helps."""
    from .lifetimes import inplace_pairs

    candidates = []
    variants = [(False, ())]
    if inplace:
        variants.append((True, tuple(inplace_pairs(graph))))
    for use_inplace, aliases in variants:
        buffers = make_buffers(graph, alignment, inplace=use_inplace)
        clashes = conflicts(buffers)
        orders = {name: sorted(range(len(buffers)), key=lambda i, key=key: key(buffers[i])) for name, key in ORDERINGS.items()}
        orders["size, TFLM's ties"] = tflm_order(buffers)  # so the best plan is never worse than TFLM's
        for name, order in orders.items():
            label = f"first-fit by {name}" + (" + in-place" if use_inplace else "")
            candidates.append(_plan(graph, buffers, order, label, alignment, aliases, clashes))
    return min(candidates, key=lambda p: (p.arena_bytes, len(p.aliases)))


def lower_bound(graph: Graph, inplace: bool = True) -> int:
    """Max over steps of the bytes that must be resident (in-place chains counted once)."""
    buffers = make_buffers(graph, 1, inplace=inplace)
    return max(live_bytes_per_step(graph, buffers), default=0)


def naive_bytes(graph: Graph, alignment: int = ALIGNMENT) -> int:
    """Every activation tensor in memory of its own for the whole run."""
    return sum(align(graph.tensors[t].nbytes, alignment) for t in graph.activations)
