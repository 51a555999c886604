"""The packages' layering (docs/architecture.md), checked on every import statement in the source.

Layers, bottom to top: the base `nlpool.core`; the model library (`nlpool` without core and the top)
and `memory_planner`; `export` and `firmware`; the flow (`nlpool.flow`), which wires them into the
export; the CLI (`nlpool.cli`) on top, which nothing imports. A module may import its own unit and any unit of a lower layer,
never a unit of its own layer or a higher one; across units it imports only a unit's public surface
(for the base, the model library and the flow their first-level modules; for the other packages
the modules listed in PUBLIC_MODULES). Imports
inside functions count: hiding a backward edge in a function does not make it go away.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nlpool", "export", "memory_planner", "firmware", "benchmarks")

# (unit, layer): the longest matching prefix names a module's unit.
UNITS = {
    "nlpool.core": 0,
    "nlpool": 1,
    "memory_planner": 1,
    "export": 2,
    "firmware": 2,
    "nlpool.flow": 3,
    "nlpool.cli": 4,
    "nlpool:root": 5,  # the package root file: the user's front door (nlpool.export_model), loaded lazily
    "benchmarks": 6,  # scripts over every package, through public surfaces only (never the CLI's internals)
}
# Units whose first-level modules are public (a library of small modules).
OPEN_UNITS = {"nlpool.core", "nlpool", "nlpool.flow"}
# The other units' public modules: each is a module another unit may import (docs/architecture.md).
PUBLIC_MODULES = {
    "memory_planner": {"memory_planner"},
    "export": {"export", "export.pipeline", "export.host_run", "export.outdir"},
    "firmware": {"firmware", "firmware.aot", "firmware.tflm", "firmware.run", "firmware.verify", "firmware.boards",
                 "firmware.common", "firmware.testing"},
}


def unit_of(module: str) -> str | None:
    if module == "nlpool":
        return "nlpool:root"
    matches = [u for u in UNITS if module == u or module.startswith(u + ".")]
    return max(matches, key=len) if matches else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from package import submodule` imports the submodule.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def public_module(module: str, unit: str) -> bool:
    """Whether importing `module` from outside `unit` stays on the unit's public surface."""
    if unit in OPEN_UNITS:
        return module.count(".") - unit.count(".") <= 1
    return module in PUBLIC_MODULES.get(unit, {unit})


def known_module(target: str) -> str | None:
    """The longest prefix of `target` that is one of our modules or packages (names after it are objects)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[:end])
    return None


def violations() -> list[str]:
    found = []
    for path in sources():
        source_unit = unit_of(module_name(path))
        for line, target in imports_of(path):
            module = known_module(target)
            target_unit = unit_of(module) if module else None
            if target_unit is None or target_unit == source_unit:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if UNITS[target_unit] >= UNITS[source_unit]:
                found.append(f"{where}: {target_unit} is not below {source_unit}")
            elif not public_module(module, target_unit):
                found.append(f"{where}: not {target_unit}'s public surface")
    return sorted(set(found))


# Sub-packages of firmware/: each is imported from outside itself only through its public modules, and
# imports only the sub-packages listed (firmware.common and firmware.boards, what both runtimes share,
# import neither runtime; the AOT runtime never imports the TFLM one).
FIRMWARE_SUBPACKAGES: dict[str, tuple[set[str], set[str]]] = {  # name -> (public modules, may import)
    "firmware.common": ({"firmware.common"}, set()),
    "firmware.boards": ({"firmware.boards"}, set()),
    "firmware.aot": ({"firmware.aot", "firmware.aot.ops"}, {"firmware.common", "firmware.boards"}),
    "firmware.tflm": ({"firmware.tflm"}, {"firmware.aot", "firmware.common", "firmware.boards"}),
}


def firmware_subpackage(module: str) -> str | None:
    return next((name for name in FIRMWARE_SUBPACKAGES if module == name or module.startswith(name + ".")), None)


def firmware_violations() -> list[str]:
    found = []
    for path in sources():
        source = module_name(path)
        source_sub = firmware_subpackage(source)
        for line, target in imports_of(path):
            module = known_module(target)
            target_sub = firmware_subpackage(module) if module else None
            if target_sub is None or target_sub == source_sub:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            public, _ = FIRMWARE_SUBPACKAGES[target_sub]
            if module not in public:
                found.append(f"{where}: not {target_sub}'s public surface")
            if source_sub is not None and target_sub not in FIRMWARE_SUBPACKAGES[source_sub][1]:
                found.append(f"{where}: {source_sub} may not import {target_sub}")
    return sorted(set(found))


def test_firmware_subpackages_import_each_other_only_through_public_surfaces() -> None:
    assert firmware_violations() == []


def test_no_import_runs_backwards_or_sideways_or_into_a_private_module() -> None:
    assert violations() == []


def test_the_base_imports_nothing_of_ours() -> None:
    for path in (ROOT / "nlpool" / "core").rglob("*.py"):
        ours = [t for _, t in imports_of(path) if known_module(t) and unit_of(known_module(t)) != "nlpool.core"]
        assert ours == [], f"{path.name} imports {ours}"


@pytest.mark.parametrize(
    ("source", "statement", "problem"),
    [
        ("memory_planner/x.py", "from nlpool.models import build_model", "is not below"),
        ("export/x.py", "from firmware import generate_project", "is not below"),
        ("firmware/x.py", "from memory_planner.memory_plan import plan_tflite", "public surface"),
        ("nlpool/models/x.py", "from ..cli import main", "is not below"),
        ("nlpool/core/x.py", "from ..models import ModelConfig", "is not below"),
        ("firmware/tflm/x.py", "from firmware.aot.generate import generate_project", "public surface"),
        ("firmware/common/x.py", "from firmware.aot import generate_project", "may not import"),
        ("firmware/aot/x.py", "from firmware.tflm import run_host", "may not import"),
        ("benchmarks/x.py", "from nlpool.cli.model_options import resolve_model", "public surface"),
        ("benchmarks/x.py", "from memory_planner.tflm_model import measure_tflm", "public surface"),
    ],
)
def test_the_checker_catches_each_kind_of_edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                               statement: str, problem: str) -> None:
    """A planted bad import is reported (so an empty list above means something)."""
    planted = ROOT / source
    monkeypatch.setattr(sys.modules[__name__], "sources", lambda: [planted])
    original = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: statement + "\n" if self == planted else original(self, *a, **k))
    found = violations() + firmware_violations()
    assert len(found) == 1 and problem in found[0], found
