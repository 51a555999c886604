"""A model the AOT generator cannot build stops it with one line naming the op, its position and the
fix, before any op unit runs, and leaves no project behind: a damaged file (truncated, a weight
buffer missing, ops out of order), an op version beyond what the kernel implements, an op without
a kernel. The TFLM project (which has many more ops) is the user's way on for the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.aot import generate_project
from firmware.aot.ops import MAX_VERSIONS
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model, schema, write_model

MODEL = Path(__file__).parent / "data" / "planner" / "chain_int8.tflite"  # CONV_2D x2, MAX_POOL_2D, CONV_2D, MEAN, FULLY_CONNECTED


def _edited(path: Path, edit: Callable[[schema.ModelT], None]) -> Path:
    model = read_model(MODEL).raw
    edit(model)
    write_model(model, path)
    return path


def _weight_buffer_missing(model: schema.ModelT) -> None:
    """The first convolution's filter points at buffer 0, the empty one every model starts with."""
    sub = model.subgraphs[0]
    sub.tensors[sub.operators[0].inputs[1]].buffer = 0


def _weight_buffer_emptied(model: schema.ModelT) -> None:
    sub = model.subgraphs[0]
    model.buffers[sub.tensors[sub.operators[3].inputs[1]].buffer].data = None


def _code_of(model: schema.ModelT, position: int) -> schema.OperatorCodeT:
    return model.operatorCodes[model.subgraphs[0].operators[position].opcodeIndex]


def _conv_version(version: int) -> Callable[[schema.ModelT], None]:
    return lambda model: setattr(_code_of(model, 0), "version", version)


def _no_kernel(model: schema.ModelT) -> None:
    """MAX_POOL_2D (op 2) becomes L2_POOL_2D: same operands and options, no AOT kernel."""
    code = _code_of(model, 2)
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.L2_POOL_2D


def _out_of_order(model: schema.ModelT) -> None:
    ops = model.subgraphs[0].operators
    ops[1], ops[2] = ops[2], ops[1]


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (lambda p: (p.write_bytes(MODEL.read_bytes()[:1500]), p)[1], "corrupt"),
    "weight buffer missing": (lambda p: _edited(p, _weight_buffer_missing),
                              "op 0 (CONV_2D) reads tensor 8 'tfl.pseudo_qconst6', which has no data and no op writes"),
    "weight buffer emptied": (lambda p: _edited(p, _weight_buffer_emptied), "op 3 (CONV_2D) reads tensor 4"),
    "op version too new": (lambda p: _edited(p, _conv_version(MAX_VERSIONS["CONV_2D"] + 4)),
                           "op 0 (CONV_2D) is version 7, the AOT kernel implements versions 1 to 3"),
    "op version zero": (lambda p: _edited(p, _conv_version(0)), "op 0 (CONV_2D) is version 0"),
    "op without kernel": (lambda p: _edited(p, _no_kernel), "no kernel for op 2 (L2_POOL_2D)"),
    "ops out of order": (lambda p: _edited(p, _out_of_order), "before op 2 (CONV_2D) writes it: the ops are out of order"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_model_gives_one_line_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    make, fragment = CASES[case]
    (tmp_path / "in").mkdir()
    path = make(tmp_path / "in" / "model.tflite")
    (tmp_path / "out").mkdir()
    with pytest.raises(NlpoolError) as caught:
        generate_project(path, tmp_path / "out" / "project", 512 * 1024, "cortex-m4")
    message = str(caught.value)
    assert "\n" not in message and fragment in message, message
    assert list((tmp_path / "out").iterdir()) == []


def test_the_unchanged_model_generates(tmp_path: Path) -> None:
    """The cases above fail because of their one edit: the model they start from builds."""
    info = generate_project(MODEL, tmp_path / "project", 512 * 1024, "cortex-m4")
    assert info.ops == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]


def test_every_op_unit_declares_the_versions_it_implements() -> None:
    from firmware.aot.ops import OPS

    assert set(MAX_VERSIONS) == set(OPS) and all(v >= 1 for v in MAX_VERSIONS.values())
