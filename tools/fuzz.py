"""Fuzz every reader and generator of user files with mutated .tflite models and checkpoints.

Why: a user hands us files we did not write (a model from another converter, a checkpoint copied
half-way, a file a disk corrupted). Whatever they hold, each reader and generator must either work
or stop with `NlpoolError` (one line naming the file and the fix), never crash, hang or eat memory,
and never leave a half-written project behind.

Targets (each gets its own mutants of its own seeds):
    reader      nlpool.core.tflite.read_model
    planner     memory_planner.plan_tflite
    aot         firmware.aot.generate_project (into a fresh folder, cortex-m7, 4 MiB)
    tflm        firmware.tflm.generate_tflm_project (same)
    checkpoint  nlpool.checkpoint.load_model

Mutants: byte-level (flips, interesting 32-bit values, truncation, splices) of the packed file, and
field-level (the .tflite re-packed from the schema tree with one or more inconsistent shapes, indices,
types, quantisation, builtin or custom options; a checkpoint re-saved with a wrong config, weights
or payload). Mutant `i` of a target is a pure function of (seed, target, i), so a run is reproducible
and a finding replays with `--replay TARGET:I`.

Outcomes: `clean` (worked, or NlpoolError with a one-line message and no output left), `crash` (any
other exception, a multi-line message, or a project left behind on failure), `hang` (no answer within
`--timeout` s: the worker is killed), `memory` (MemoryError, or the worker grew past `--max-rss-mb`).
Each target runs in a worker process the driver restarts after a hang or a death.

    .venv/bin/python tools/fuzz.py --mutants 10000 --jobs 2          # the benchmark (README figures)
    .venv/bin/python tools/fuzz.py --mutants 50 --targets aot,tflm   # a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TFLITE_SEEDS = (
    ROOT / "tests" / "data" / "fuzz" / "weighted_pool_fused.tflite",
    ROOT / "tests" / "data" / "fuzz" / "weighted_pool_fused.plain.tflite",
    ROOT / "tests" / "data" / "planner" / "chain_int8.tflite",
    ROOT / "tests" / "data" / "planner" / "residual_int8.tflite",
    ROOT / "tests" / "data" / "planner" / "attention_int8.tflite",
    ROOT / "tests" / "data" / "fuzz" / "attention_fused.tflite",  # one NLPOOL_ATTENTION op (tests/attention_blocks.py)
)
TARGETS = ("reader", "planner", "aot", "tflm", "checkpoint")
OUTCOMES = ("clean", "crash", "hang", "memory")
INTERESTING_INTS = (0, 1, -1, 2, 3, 4, 7, 8, 16, 127, 128, 255, 256, -128, 1 << 15, (1 << 31) - 1, -(1 << 31), 1 << 20, 1 << 30)
INTERESTING_FLOATS = (0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 1e38, 1e-12)


# ---------------------------------------------------------------- .tflite mutants

def _pick(rng: np.random.Generator, items: list | tuple) -> object:
    return items[int(rng.integers(len(items)))]


def _some_int(rng: np.random.Generator, count: int) -> int:
    """An index-like value: often in range, often just outside, sometimes absurd."""
    choice = rng.random()
    if choice < 0.4 and count > 0:
        return int(rng.integers(count))
    if choice < 0.7:
        return int(_pick(rng, (count, count + 1, -1, -2)))
    return int(_pick(rng, INTERESTING_INTS))


def _mutate_tree(model: object, rng: np.random.Generator) -> None:
    """One field-level edit of a schema tree (ModelT): the kinds of inconsistency another writer, or a
    corruption that keeps the flatbuffer well-formed, produces."""
    from ai_edge_litert import schema_py_generated as schema

    sub = model.subgraphs[0]
    tensors, ops, codes = sub.tensors or [], sub.operators or [], model.operatorCodes or []
    kind = int(rng.integers(17))
    if kind == 0 and tensors:  # shape: a dimension changed, dropped, added, zero, negative or huge
        t = _pick(rng, tensors)
        shape = list(t.shape if t.shape is not None else [])
        edit = int(rng.integers(4))
        if edit == 0 and shape:
            shape[int(rng.integers(len(shape)))] = int(_pick(rng, INTERESTING_INTS))
        elif edit == 1 and shape:
            shape.pop(int(rng.integers(len(shape))))
        elif edit == 2:
            shape.insert(int(rng.integers(len(shape) + 1)), int(_pick(rng, (1, 2, 3, 0))))
        else:
            shape = []
        t.shape = shape
    elif kind == 1 and tensors:  # element type
        _pick(rng, tensors).type = int(rng.integers(0, 20))
    elif kind == 2 and tensors:  # buffer index
        _pick(rng, tensors).buffer = _some_int(rng, len(model.buffers or []))
    elif kind == 3 and tensors:  # quantisation: scales, zero points, dimension
        t = _pick(rng, tensors)
        q = t.quantization or schema.QuantizationParametersT()
        edit = int(rng.integers(5))
        if edit == 0:
            q.scale = [float(_pick(rng, INTERESTING_FLOATS))] * int(rng.integers(1, 4))
        elif edit == 1:
            q.zeroPoint = [int(_pick(rng, INTERESTING_INTS))] * int(rng.integers(1, 4))
        elif edit == 2:
            q.quantizedDimension = int(_pick(rng, INTERESTING_INTS))
        elif edit == 3:
            q.scale, q.zeroPoint = None, None
        else:
            n = int(rng.integers(1, 40))
            q.scale, q.zeroPoint = list(rng.random(n) * 0.1 + 1e-3), [0] * n
        t.quantization = q
    elif kind == 4 and ops:  # operator inputs
        op = _pick(rng, ops)
        inputs = list(op.inputs if op.inputs is not None else [])
        edit = int(rng.integers(3))
        if edit == 0 and inputs:
            inputs[int(rng.integers(len(inputs)))] = _some_int(rng, len(tensors))
        elif edit == 1 and inputs:
            inputs.pop(int(rng.integers(len(inputs))))
        else:
            inputs.append(_some_int(rng, len(tensors)))
        op.inputs = inputs
    elif kind == 5 and ops:  # operator outputs
        op = _pick(rng, ops)
        outputs = list(op.outputs if op.outputs is not None else [])
        if outputs and rng.random() < 0.5:
            outputs[int(rng.integers(len(outputs)))] = _some_int(rng, len(tensors))
        elif outputs and rng.random() < 0.5:
            outputs = []
        else:
            outputs.append(_some_int(rng, len(tensors)))
        op.outputs = outputs
    elif kind == 6 and ops:  # operator code
        _pick(rng, ops).opcodeIndex = _some_int(rng, len(codes))
    elif kind == 7 and codes:  # what an operator code means
        code = _pick(rng, codes)
        code.builtinCode = code.deprecatedBuiltinCode = int(rng.integers(0, 210))
    elif kind == 8 and ops:  # builtin options of another op, or none
        op, other = _pick(rng, ops), _pick(rng, ops)
        if rng.random() < 0.5:
            op.builtinOptionsType, op.builtinOptions = 0, None
        else:
            op.builtinOptionsType, op.builtinOptions = other.builtinOptionsType, other.builtinOptions
    elif kind == 9 and ops:  # builtin option fields: strides, padding, activation, axes ...
        op = _pick(rng, ops)
        options = op.builtinOptions
        fields = [k for k, v in vars(options).items() if isinstance(v, (int, float, bool))] if options is not None else []
        if fields:
            setattr(options, str(_pick(rng, fields)), int(_pick(rng, INTERESTING_INTS)))
    elif kind == 10 and ops:  # custom options: random bytes, cut, or a field of the FlexBuffer changed
        op = _pick(rng, ops)
        _mutate_custom_options(op, rng)
    elif kind == 11:  # subgraph inputs / outputs
        field = "inputs" if rng.random() < 0.5 else "outputs"
        values = list(getattr(sub, field) if getattr(sub, field) is not None else [])
        if values and rng.random() < 0.6:
            values[int(rng.integers(len(values)))] = _some_int(rng, len(tensors))
        else:
            values = [] if rng.random() < 0.5 else [*values, _some_int(rng, len(tensors))]
        setattr(sub, field, values)
    elif kind == 12 and tensors:  # names: invalid UTF-8, empty, C-hostile
        _pick(rng, tensors).name = bytes(_pick(rng, (b"\xff\xfe\x80", b"", b"a\"b\\c\n*/", b"x" * 300)))
    elif kind == 13 and tensors:  # a dynamic dimension in the signature
        t = _pick(rng, tensors)
        shape = list(t.shape if t.shape is not None else [1])
        t.shapeSignature = [-1, *shape[1:]] if shape else [-1]
    elif kind == 14 and model.buffers:  # buffer data: cut, grown or emptied
        buffers = [b for b in model.buffers if b.data is not None and len(b.data)]
        if buffers:
            b = _pick(rng, buffers)
            data = np.asarray(b.data, np.uint8)
            b.data = _pick(rng, (data[: len(data) // 2], np.concatenate([data, data]), np.zeros(0, np.uint8), data[:-1]))
    elif kind == 15 and len(ops) > 1:  # operators swapped: a tensor read before it is written
        i, j = rng.choice(len(ops), 2, replace=False)
        ops[i], ops[j] = ops[j], ops[i]
    elif kind == 16 and codes:  # an op version no kernel implements (a feature of a newer converter), or nonsense
        _pick(rng, codes).version = int(_pick(rng, INTERESTING_INTS))


def _mutate_custom_options(op: object, rng: np.random.Generator) -> None:
    from flatbuffers import flexbuffers

    blob = bytes(np.asarray(op.customOptions, np.uint8)) if op.customOptions is not None else b""
    edit = int(rng.integers(4))
    if edit == 0 or not blob:
        op.customOptions = list(rng.integers(0, 256, int(rng.integers(0, 64))).astype(np.uint8))
        return
    if edit == 1:
        op.customOptions = list(blob[: int(rng.integers(len(blob)))])
        return
    try:
        data = flexbuffers.Loads(bytearray(blob))
    except Exception:  # not a FlexBuffer (a builtin's custom options): leave it
        return
    if not isinstance(data, dict) or not data:
        return
    key = str(_pick(rng, sorted(data)))
    if edit == 2:
        data[key] = _pick(rng, (int(_pick(rng, INTERESTING_INTS)), "text", [1, 2], 1.5, True))
    else:
        del data[key]
    op.customOptions = list(flexbuffers.Dumps(data))


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """Byte-level damage: flips, an interesting 32-bit value at an aligned offset, truncation, a splice."""
    out = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0:
        for position in rng.integers(0, len(out), int(rng.integers(1, 9))):
            out[position] = int(rng.integers(256))
    elif kind == 1:
        for _ in range(int(rng.integers(1, 4))):
            position = int(rng.integers(0, max(1, len(out) // 4))) * 4
            value = int(_pick(rng, INTERESTING_INTS)) & 0xFFFFFFFF
            out[position : position + 4] = value.to_bytes(4, "little")
    elif kind == 2:
        out = out[: int(rng.integers(0, len(out)))]
    else:
        start, length = int(rng.integers(len(out))), int(rng.integers(1, 64))
        source = int(rng.integers(len(out)))
        out[start : start + length] = out[source : source + length]
    return bytes(out)


def tflite_mutant(seeds: list[bytes], seed: int, target: str, index: int) -> bytes:
    """Mutant `index` of `target`: a seed model damaged at byte level or re-packed with field edits."""
    from ai_edge_litert import schema_py_generated as schema

    from nlpool.core.tflite import model_bytes

    rng = np.random.default_rng([seed, TARGETS.index(target), index])
    base = seeds[int(rng.integers(len(seeds)))]
    if rng.random() < 0.35:
        return _mutate_bytes(base, rng)
    for _attempt in range(4):
        model = schema.ModelT.InitFromPackedBuf(bytearray(base), 0)
        for _ in range(int(rng.integers(1, 4))):
            _mutate_tree(model, rng)
        try:
            return model_bytes(model)
        except Exception:  # an edit the flatbuffer builder cannot pack (e.g. a value out of its type): try another
            continue
    return _mutate_bytes(base, rng)


# ---------------------------------------------------------------- checkpoint mutants

def checkpoint_seed(path: Path) -> None:
    """A small real checkpoint (MobileNetV2 0.1x, self-attentive pooling, 32 px) as `nlpool train` writes it."""
    from nlpool.checkpoint import save_checkpoint
    from nlpool.models import ModelConfig, build_model

    cfg = ModelConfig(width=0.1, input_size=32, s1=1, num_classes=4)
    save_checkpoint(path, build_model(cfg), cfg, train={"data": "synthetic"}, classes=["a", "b", "c", "d"])


def checkpoint_mutant(seed_bytes: bytes, seed: int, index: int) -> bytes:
    """Mutant `index`: the zip damaged at byte level, or the payload re-saved with a wrong field."""
    import torch

    rng = np.random.default_rng([seed, TARGETS.index("checkpoint"), index])
    if rng.random() < 0.3:
        return _mutate_bytes(seed_bytes, rng)
    payload = torch.load(io.BytesIO(seed_bytes), weights_only=True)
    odd_values = ("abc", None, -1, 0, 1e9, 1 << 40, [1, 2], {}, True, float("nan"), 2.5, ["x", "y"], [[1]], "", (1 << 70))
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(7))
        config, weights = payload.get("config"), payload.get("model")
        if kind == 0 and isinstance(config, dict) and config:  # a config value of the wrong type or range
            config[str(_pick(rng, sorted(config)))] = _pick(rng, odd_values)
        elif kind == 1 and isinstance(config, dict) and config:  # a config key dropped or unknown
            if rng.random() < 0.5:
                config.pop(str(_pick(rng, sorted(config))))
            else:
                config[str(_pick(rng, ("depth", "1", "input-size")))] = 1
        elif kind == 2:  # the config or the weights replaced whole
            payload[str(_pick(rng, ("config", "model")))] = _pick(rng, odd_values)
        elif kind == 3 and isinstance(weights, dict) and weights:  # a weight reshaped, retyped, dropped or poisoned
            name = str(_pick(rng, sorted(weights)))
            edit = int(rng.integers(4))
            if edit == 0:
                weights[name] = torch.zeros(int(rng.integers(1, 5)), 3)
            elif edit == 1:
                weights[name] = weights[name].to(torch.int8)
            elif edit == 2:
                weights.pop(name)
            else:
                weights[name] = torch.full_like(weights[name], float("nan")) if weights[name].is_floating_point() else weights[name]
        elif kind == 4 and isinstance(weights, dict):  # a weight that is not a tensor, or an extra one
            weights[str(_pick(rng, (*sorted(weights)[:3], "extra.weight")))] = _pick(rng, (1.0, "w", [1, 2], torch.zeros(2)))
        elif kind == 5:  # the training record malformed
            payload[str(_pick(rng, ("input_mean", "input_std", "classes", "train")))] = _pick(rng, odd_values)
        else:  # not a dict at all
            payload = _pick(rng, ([1, 2], "checkpoint", None, (payload,)))
            break
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- running one mutant

def _run_target(target: str, path: Path, scratch: Path) -> None:
    """Feed one file to one reader or generator (raises what it raises)."""
    if target == "reader":
        from nlpool.core.tflite import read_model

        read_model(path)
    elif target == "planner":
        from memory_planner import plan_tflite

        plan_tflite(path)
    elif target == "aot":
        from firmware.aot import generate_project

        out = scratch / "aot"
        try:
            generate_project(path, out, 4 << 20, "cortex-m7")
        except BaseException:
            _nothing_left(out)
            raise
        shutil.rmtree(out)
    elif target == "tflm":
        from firmware.tflm import generate_tflm_project

        out = scratch / "tflm"
        try:
            generate_tflm_project(path, out, "cortex-m7", sram_budget=4 << 20)
        except BaseException:
            _nothing_left(out)
            raise
        shutil.rmtree(out)
    else:
        from nlpool.checkpoint import load_model, training_record

        load_model(path)
        training_record(path)


class LeftBehind(Exception):
    """A generator failed but left (part of) its project behind."""


def _nothing_left(out: Path) -> None:
    left = [p.name for p in out.parent.iterdir() if p.name != "input"]
    if left:
        for p in left:
            shutil.rmtree(out.parent / p, ignore_errors=True)
        raise LeftBehind(f"failed but left {left}")


def classify(target: str, path: Path, scratch: Path) -> tuple[str, str]:
    """(outcome, detail) of feeding `path` to `target` in this process."""
    from nlpool.core.errors import NlpoolError

    try:
        _run_target(target, path, scratch)
    except NlpoolError as err:
        message = str(err)
        if "\n" in message or not message.strip():
            return "crash", f"NlpoolError message is not one line: {message[:200]!r}"
        return "clean", ""
    except MemoryError:
        return "memory", "MemoryError"
    except LeftBehind as err:
        return "crash", str(err)
    except RecursionError:
        return "crash", "RecursionError"
    except Exception as err:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        return "crash", f"{type(err).__name__}: {str(err)[:160]} at {Path(frame.filename).name}:{frame.lineno}"
    return "clean", ""


def worker(target: str, seed: int, start: int, stop: int, max_rss_mb: int) -> None:
    """Answer one JSON line per mutant on stdout; exit (to be restarted) once memory grew past the limit."""
    scratch = Path(tempfile.mkdtemp(prefix="nlpool-fuzz-"))
    try:
        path = scratch / "input" / ("model.pt" if target == "checkpoint" else "model.tflite")
        path.parent.mkdir()
        if target == "checkpoint":
            checkpoint_seed(scratch / "seed.pt")
            seed_bytes = (scratch / "seed.pt").read_bytes()
            make = lambda i: checkpoint_mutant(seed_bytes, seed, i)  # noqa: E731
        else:
            seeds = [p.read_bytes() for p in TFLITE_SEEDS]
            make = lambda i: tflite_mutant(seeds, seed, target, i)  # noqa: E731
        for index in range(start, stop):
            path.write_bytes(make(index))
            began = time.perf_counter()
            outcome, detail = classify(target, path, scratch)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if outcome == "clean" and rss_mb > max_rss_mb:
                outcome, detail = "memory", f"worker grew to {rss_mb:.0f} MB"
            line = {"index": index, "outcome": outcome, "detail": detail, "seconds": round(time.perf_counter() - began, 4)}
            print(json.dumps(line), flush=True)
            if outcome == "memory":
                return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- the driver

def fuzz_target(target: str, mutants: int, seed: int, timeout: float, max_rss_mb: int, findings: Path | None,
                echo: Callable[[str], None] = print) -> dict[str, object]:
    """Run `mutants` mutants of `target` in worker processes; restart a worker after a hang or a death."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    began = time.perf_counter()
    index = 0
    while index < mutants:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", target, "--seed", str(seed),
                   "--start", str(index), "--stop", str(mutants), "--max-rss-mb", str(max_rss_mb)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert process.stdout is not None
        deadline = time.monotonic() + timeout + 60  # the first answer also pays the worker's imports
        while index < mutants:
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                process.kill()
                process.wait()
                counts["hang"] += 1
                examples.setdefault("hang", []).append(f"#{index}: no answer within {timeout} s")
                _keep(findings, target, seed, index)
                index += 1
                break
            line = process.stdout.readline()
            if not line:  # the worker died on this mutant (a segfault, the OOM killer) or left after a memory outcome
                code = process.wait()
                if code != 0:
                    kind = "memory" if code in (-9, 137) else "crash"
                    counts[kind] += 1
                    examples.setdefault(kind, []).append(f"#{index}: worker died with exit code {code}")
                    _keep(findings, target, seed, index)
                    index += 1
                break
            result = json.loads(line)
            index = result["index"] + 1
            counts[result["outcome"]] += 1
            if result["outcome"] != "clean":
                examples.setdefault(result["outcome"], []).append(f"#{result['index']}: {result['detail']}")
                _keep(findings, target, seed, result["index"])
            if result["seconds"] > timeout:  # answered, but too late: a hang as far as a user is concerned
                counts["hang"] += 1
                counts["clean" if result["outcome"] == "clean" else result["outcome"]] -= 1
                examples.setdefault("hang", []).append(f"#{result['index']}: took {result['seconds']} s")
            deadline = time.monotonic() + timeout
        else:
            process.wait()
    seconds = time.perf_counter() - began
    summary = {"target": target, "mutants": mutants, **{k: counts[k] for k in OUTCOMES}, "seconds": round(seconds, 1),
               "examples": {k: v[:5] for k, v in examples.items()}}
    echo(f"{target:<10} {mutants:>6} mutants  " + "  ".join(f"{k} {counts[k]}" for k in OUTCOMES) + f"  ({seconds:.0f} s)")
    return summary


def _keep(findings: Path | None, target: str, seed: int, index: int) -> None:
    """Note a finding so it can be replayed (`--replay TARGET:INDEX --seed SEED`)."""
    if findings is not None:
        with findings.open("a") as handle:
            handle.write(f"{target}:{index} seed {seed}\n")


def replay(spec: str, seed: int) -> None:
    """Rebuild one mutant and run it here, with its traceback: how a finding is debugged."""
    from nlpool.core.errors import NlpoolError

    target, _, number = spec.partition(":")
    scratch = Path(tempfile.mkdtemp(prefix="nlpool-fuzz-"))
    path = scratch / "input" / ("model.pt" if target == "checkpoint" else "model.tflite")
    path.parent.mkdir()
    if target == "checkpoint":
        checkpoint_seed(scratch / "seed.pt")
        path.write_bytes(checkpoint_mutant((scratch / "seed.pt").read_bytes(), seed, int(number)))
    else:
        path.write_bytes(tflite_mutant([p.read_bytes() for p in TFLITE_SEEDS], seed, target, int(number)))
    print(f"mutant written to {path}")
    try:
        _run_target(target, path, scratch)
        print("clean: it worked")
    except NlpoolError as err:
        print(f"clean: NlpoolError: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000, help="mutants per target")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one mutant may take before it counts as a hang")
    parser.add_argument("--max-rss-mb", type=int, default=3000, help="worker memory that counts as a blow-up")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--findings", type=Path, default=None, help="append every non-clean mutant's TARGET:INDEX here")
    parser.add_argument("--replay", default=None, help="TARGET:INDEX: rebuild one mutant and run it with its traceback")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seed, args.start, args.stop, args.max_rss_mb)
        return
    if args.replay:
        replay(args.replay, args.seed)
        return
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}: use {','.join(TARGETS)}")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda t: fuzz_target(t, args.mutants, args.seed, args.timeout, args.max_rss_mb, args.findings),
                                targets))
    total = sum(int(r["crash"]) + int(r["hang"]) + int(r["memory"]) for r in results)
    for result in results:
        for kind, lines in result["examples"].items():
            for line in lines:
                print(f"  {result['target']} {kind} {line}")
    if args.json is not None:
        args.json.write_text(json.dumps({"seed": args.seed, "timeout_s": args.timeout, "results": results}, indent=2) + "\n")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
