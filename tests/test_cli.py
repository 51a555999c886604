"""The command line as a user meets it: version, help everywhere, listings, the summary, bad flags."""

from __future__ import annotations

import importlib.metadata
import json

import click
import pytest
from conftest import run_cli

from nlpool import __version__
from nlpool.cli import cli
from nlpool.layers import POOL_KINDS
from nlpool.models import PRESETS, ModelConfig, build_model


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


def test_version_matches_the_installed_distribution() -> None:
    code, out, err = run_cli(["--version"])
    assert code == 0 and err == ""
    assert out.strip() == f"nlpool, version {__version__}"
    assert importlib.metadata.version("nlpool") == __version__


@pytest.mark.parametrize("path", [(), *_command_paths(cli)], ids=lambda p: " ".join(p) or "nlpool")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(path: tuple[str, ...], flag: str) -> None:
    code, out, err = run_cli([*path, flag])
    assert code == 0 and err == ""
    assert out.startswith(f"Usage: nlpool {' '.join(path)}".rstrip()) and "Options:" in out


def test_bare_nlpool_shows_the_help_not_an_error() -> None:
    code, _out, err = run_cli([])
    assert code != 0 and "Commands:" in err and "error" not in err.lower()


def test_models_lists_presets_and_options() -> None:
    code, out, err = run_cli(["models"])
    assert code == 0 and err == ""
    for name in PRESETS:
        assert name in out
    assert " | ".join(POOL_KINDS) in out and "mobilenetv2 | resnet18" in out


SUMMARY_KEYS = {"name", "kind", "output_shape", "params", "macs", "activation_bytes"}


@pytest.mark.parametrize(
    "flags",
    [["--input-size", "64"], ["--arch", "resnet18", "--width", "0.25", "--pool", "gaussian", "--s1", "4", "--input-size", "128"]],
)
def test_summary_json_schema(flags: list[str]) -> None:
    code, out, err = run_cli(["summary", "--json", "--num-classes", "5", *flags])
    assert code == 0 and err == ""
    data = json.loads(out)
    records, totals = data["layers"], data["totals"]
    assert records and all(set(r) == SUMMARY_KEYS for r in records)
    for r in records:
        assert isinstance(r["name"], str) and isinstance(r["kind"], str)
        assert all(isinstance(r[k], int) and r[k] >= 0 for k in ("params", "macs", "activation_bytes"))
        shape = r["output_shape"]
        assert shape[0] == 1 and all(isinstance(d, int) and d > 0 for d in shape)
        assert r["activation_bytes"] == _numel(shape)  # int8: one byte per element
    # every unit but the classifier outputs a feature map (N, C, H, W); the classifier outputs (N, K)
    assert all(len(r["output_shape"]) == 4 for r in records[:-1]) and records[-1]["output_shape"] == [1, 5]
    assert {"params", "macs", "activation_bytes"} <= set(totals)
    cfg = ModelConfig.from_dict(data["config"])
    assert totals["params"] == sum(p.numel() for p in build_model(cfg).parameters()) == sum(r["params"] for r in records)
    assert totals["macs"] == sum(r["macs"] for r in records) > 0


def _numel(shape: list[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def test_summary_table_names_every_layer() -> None:
    code, out, err = run_cli(["summary", "--pool", "lip", "--placement", "outer", "--input-size", "64"])
    assert code == 0 and err == ""
    assert "pool=lip" in out and "placement=outer" in out
    for name in ("stem", "stage1_pool", "stage6_pool", "head", "classifier", "total"):
        assert name in out


BAD_FLAGS = [
    ["summary", "--pool", "median"],
    ["summary", "--s1", "3"],
    ["summary", "--input-size", "98"],  # s1 = 2: the input must be a multiple of 4
    ["summary", "--arch", "resnet18", "--input-size", "100"],  # ResNet stem 4 x s1 2: multiple of 8
    ["summary", "--input-size", "32"],  # too small for the down-sampling stages
    ["summary", "--no-such-option"],
    ["summary", "--s1", "two"],
    ["summary", "--arch", "vgg16"],
    ["summary", "--placement", "middle"],
    ["summary", "--width", "0"],
    ["summary", "--num-classes", "1"],
    ["summary", "--patch-sizes", "4,4"],
    ["summary", "--patch-sizes", "four"],
    ["summary", "--model", "no_such_preset"],
    ["summary", "--checkpoint", "/nonexistent/model.pt"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", BAD_FLAGS, ids=" ".join)
def test_bad_flags_give_one_line_and_nonzero_exit(args: list[str]) -> None:
    code, out, err = run_cli(args)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and out == ""


def test_the_installed_script_reports_errors_without_traceback() -> None:
    code, out, err = run_cli(["summary", "--s1", "3"], subprocess_run=True)
    assert code != 0 and out == ""
    assert err.strip().splitlines() == ["error: s1 must be 1, 2 or 4, got 3: use --s1 1|2|4"]
    code, out, _ = run_cli(["--version"], subprocess_run=True)
    assert code == 0 and out.strip() == f"nlpool, version {__version__}"
