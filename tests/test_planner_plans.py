"""Arena plans on hand-computed graphs (exact peaks) and on random graphs (invariants)."""

from __future__ import annotations

import random

import pytest

from memory_planner.graph import Graph, Op, Tensor
from memory_planner.lifetimes import inplace_pairs, make_buffers, tensor_lifetimes
from memory_planner.memory_plan import build_plan
from memory_planner.plans import ORDERINGS, _plan, best_plan, greedy_by_size, lower_bound, naive_bytes


def make_graph(sizes: dict[str, int], ops: list[tuple[str, list[str], str]], inputs: list[str], outputs: list[str]) -> Graph:
    """Graph from named 1-byte tensors of the given sizes and (kind, inputs, output) ops."""
    index = {name: i for i, name in enumerate(sizes)}
    tensors = {i: Tensor(i, name, (sizes[name],), "int8", 1) for name, i in index.items()}
    graph_ops = [Op(k, kind, out, tuple(index[n] for n in ins), (index[out],)) for k, (kind, ins, out) in enumerate(ops)]
    return Graph("hand", tensors, graph_ops, tuple(index[n] for n in inputs), tuple(index[n] for n in outputs)).validate()


def chain() -> Graph:
    # in -> t1 -> t2 -> out; live: step0 in+t1 = 300, step1 t1+t2 = 250, step2 t2+out = 60
    return make_graph(
        {"in": 100, "t1": 200, "t2": 50, "out": 10},
        [("CONV_2D", ["in"], "t1"), ("CONV_2D", ["t1"], "t2"), ("FULLY_CONNECTED", ["t2"], "out")],
        ["in"],
        ["out"],
    )


def residual() -> Graph:
    # x is read by the first conv and by the add: it stays live across the block body.
    # live: step0 x+a = 192, step1 x+a+b = 256, step2 x+b+y = 192, step3 y+out = 72
    return make_graph(
        {"x": 64, "a": 128, "b": 64, "y": 64, "out": 8},
        [("CONV_2D", ["x"], "a"), ("CONV_2D", ["a"], "b"), ("ADD", ["x", "b"], "y"), ("FULLY_CONNECTED", ["y"], "out")],
        ["x"],
        ["out"],
    )


def branches() -> Graph:
    # e feeds two branches and the final concat, so it outlives both; peak at the concat (step 4):
    # e 100 + a2 50 + b 30 + c 180 = 360
    return make_graph(
        {"in": 10, "e": 100, "a": 50, "a2": 50, "b": 30, "c": 180, "out": 5},
        [
            ("CONV_2D", ["in"], "e"),
            ("CONV_2D", ["e"], "a"),
            ("CONV_2D", ["a"], "a2"),
            ("CONV_2D", ["e"], "b"),
            ("CONCATENATION", ["e", "a2", "b"], "c"),
            ("FULLY_CONNECTED", ["c"], "out"),
        ],
        ["in"],
        ["out"],
    )


@pytest.mark.parametrize(
    ("make", "peak", "peak_step", "naive"),
    [(chain, 300, 0, 360), (residual, 256, 1, 328), (branches, 360, 4, 425)],
)
def test_hand_computed_peaks(make, peak, peak_step, naive):
    graph = make()
    assert lower_bound(graph, inplace=False) == peak
    assert greedy_by_size(graph, alignment=1).arena_bytes == peak
    assert best_plan(graph, alignment=1).arena_bytes == peak
    assert naive_bytes(graph, alignment=1) == naive
    plan = build_plan(graph)
    assert plan.peak_layer.step == peak_step
    assert plan.peak_layer.live_bytes == peak
    assert [r.peak for r in plan.layers].count(True) == 1


def test_lifetimes_of_the_branch_that_outlives_its_siblings():
    spans = tensor_lifetimes(branches())
    assert spans[1] == (0, 4)  # e: written at step 0, last read by the concat at step 4
    assert spans[2] == (1, 2)  # a dies when a2 is written
    assert spans[6] == (5, 5)  # the graph output lives to the last step


def test_residual_add_may_write_over_its_dying_input():
    graph = residual()
    assert inplace_pairs(graph) == [(2, 0, 3)]  # ADD writes y over x (x's last reader, same size)
    plan = best_plan(graph, alignment=1)
    plan.check(graph)
    # with y over x the add step holds 128 bytes, not 192; the peak (step 1) is unchanged
    assert lower_bound(graph, inplace=True) == 256


def test_alignment_is_16_bytes_by_default():
    plan = best_plan(chain())
    assert plan.alignment == 16
    assert all(offset % 16 == 0 for offset in plan.offsets.values())
    assert plan.arena_bytes == 112 + 208  # in and t1, each rounded up to 16 bytes


def random_graph(rng: random.Random) -> Graph:
    tensors = {0: Tensor(0, "in", (rng.randint(1, 300),), "int8", 1)}
    ops = []
    for k in range(rng.randint(1, 25)):
        available = list(tensors)
        kind = rng.choice(["CONV_2D", "ADD", "RELU", "CONCATENATION", "RESHAPE"])
        reads = rng.sample(available, min(len(available), rng.randint(1, 3)))
        same_size = kind in ("RELU", "RESHAPE", "ADD") and rng.random() < 0.6  # an in-place candidate
        size = tensors[reads[0]].nbytes if same_size else rng.randint(1, 300)
        out = len(tensors)
        tensors[out] = Tensor(out, f"t{out}", (size,), "int8", 1)
        if rng.random() < 0.2:
            const = out + 1
            tensors[const] = Tensor(const, f"w{const}", (rng.randint(1, 50),), "int8", 1, constant=True)
            reads.append(const)
        ops.append(Op(k, kind, f"op{k}", tuple(reads), (out,)))
    outputs = (ops[-1].outputs[0],)
    return Graph("random", tensors, ops, (0,), outputs).validate()


@pytest.mark.parametrize("seed", range(150))
def test_random_graphs_never_overlap_and_never_beat_the_lower_bound(seed):
    graph = random_graph(random.Random(seed))
    bound = lower_bound(graph, inplace=True)
    assert bound <= lower_bound(graph, inplace=False)
    plans = [greedy_by_size(graph), best_plan(graph), best_plan(graph, alignment=1)]
    for inplace in (False, True):
        buffers = make_buffers(graph, 16, inplace=inplace)
        aliases = inplace_pairs(graph) if inplace else ()
        for name, key in ORDERINGS.items():
            order = sorted(range(len(buffers)), key=lambda i, key=key: key(buffers[i]))
            plans.append(_plan(graph, buffers, order, name, 16, aliases))
    for plan in plans:
        plan.check(graph)
        assert plan.arena_bytes >= bound
        assert set(plan.offsets) == set(graph.activations)
    assert best_plan(graph).arena_bytes <= greedy_by_size(graph).arena_bytes


def test_check_catches_an_overlap():
    graph = chain()
    plan = greedy_by_size(graph)
    broken = type(plan)(plan.strategy, dict.fromkeys(plan.offsets, 0), plan.sizes, plan.arena_bytes, plan.alignment)
    with pytest.raises(AssertionError, match="overlap"):
        broken.check(graph)


def test_in_place_reuse_halves_an_elementwise_peak_and_can_be_turned_off():
    # the RELU step is the peak (a and b live together) unless b is written over a
    graph = make_graph(
        {"in": 10, "a": 100, "b": 100, "out": 1},
        [("CONV_2D", ["in"], "a"), ("RELU", ["a"], "b"), ("FULLY_CONNECTED", ["b"], "out")],
        ["in"],
        ["out"],
    )
    with_reuse = best_plan(graph, alignment=1)
    assert with_reuse.arena_bytes == lower_bound(graph, inplace=True) == 110
    assert with_reuse.aliases == ((1, 1, 2),) and with_reuse.offsets[1] == with_reuse.offsets[2]
    without_reuse = build_plan(graph, inplace=False).best
    assert without_reuse.aliases == () and without_reuse.arena_bytes == 2 * align_up(100)


def align_up(size: int) -> int:
    return -(-size // 16) * 16
