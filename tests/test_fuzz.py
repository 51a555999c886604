"""A short seeded run of tools/fuzz.py in CI: every reader and generator on mutated files, in this process.

The 10,000-mutant run per target is the benchmark (README); this keeps the harness itself working
and catches a regression that makes a mutant crash, in seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "tools" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("nlpool_fuzz", FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules["nlpool_fuzz"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("target", "count"), [("reader", 60), ("planner", 60), ("aot", 40), ("tflm", 40)])
def test_mutated_models_never_crash_a_reader_or_generator(fuzz, tmp_path, target, count):
    seeds = [p.read_bytes() for p in fuzz.TFLITE_SEEDS]
    path = tmp_path / "input" / "model.tflite"
    path.parent.mkdir()
    for index in range(count):
        path.write_bytes(fuzz.tflite_mutant(seeds, 0, target, index))
        outcome, detail = fuzz.classify(target, path, tmp_path)
        assert outcome == "clean", f"{target} mutant {index} (replay: tools/fuzz.py --replay {target}:{index}): {detail}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]  # no project left behind


def test_mutated_checkpoints_never_crash_the_loader(fuzz, tmp_path):
    fuzz.checkpoint_seed(tmp_path / "seed.pt")
    seed = (tmp_path / "seed.pt").read_bytes()
    path = tmp_path / "input" / "model.pt"
    path.parent.mkdir()
    for index in range(12):
        path.write_bytes(fuzz.checkpoint_mutant(seed, 0, index))
        outcome, detail = fuzz.classify("checkpoint", path, tmp_path)
        assert outcome == "clean", f"checkpoint mutant {index} (replay: tools/fuzz.py --replay checkpoint:{index}): {detail}"


def test_the_mutants_are_not_all_refused(fuzz, tmp_path):
    """A fuzzer whose every mutant fails at the first check tests nothing beyond it: some must read."""
    from nlpool.core.errors import NlpoolError
    from nlpool.core.tflite import read_model

    seeds = [p.read_bytes() for p in fuzz.TFLITE_SEEDS]
    path = tmp_path / "m.tflite"
    read = 0
    for index in range(60):
        path.write_bytes(fuzz.tflite_mutant(seeds, 0, "reader", index))
        try:
            read_model(path)
            read += 1
        except NlpoolError:
            pass
    assert 5 <= read <= 55, read


def test_the_driver_runs_a_worker_process_and_counts_its_answers(fuzz):
    """The benchmark's path: mutants run in a worker subprocess whose JSON answers the driver counts."""
    summary = fuzz.fuzz_target("reader", 3, 0, timeout=30.0, max_rss_mb=100000, findings=None, echo=lambda _line: None)
    assert summary["clean"] == 3 and summary["crash"] == summary["hang"] == summary["memory"] == 0
