"""Stand-ins for MLPerf Tiny's KWS (DS-CNN) and AD (FC auto-encoder), the suite's models not given here
(`benchmarks/mlperf_proxies.py`: their layer shapes, random weights, the Keras converter's int8), through
`nlpool export MODEL.tflite` on Cortex-M4 with both TFLM trees: every firmware runs in the arena it
declares, AOT and TFLM are bit-exact with each other and with the host reference, and the AOT firmware
ran nlpool's generated kernels where it has them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.run import check_tools
from nlpool.core.errors import NlpoolError
from nlpool.flow.export_flow import ExportOptions
from nlpool.flow.tflite_flow import export_tflite

ROOT = Path(__file__).resolve().parents[1]
TREE = os.environ.get("NLPOOL_TFLM_DIR")


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    if not TREE:
        pytest.skip("no TFLM tree with CMSIS-NN (set NLPOOL_TFLM_DIR)")
    try:
        check_tools("cortex-m4")
    except NlpoolError as err:
        pytest.skip(str(err))
    out = tmp_path_factory.mktemp("proxies")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mlperf_proxies.py"), str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("name", ["kws_ds_cnn_proxy", "ad_autoencoder_proxy"])
def test_suite_shaped_model_runs_bit_exact_in_both_firmwares(proxies: Path, name: str, tmp_path: Path) -> None:
    tree = Path(TREE)
    options = ExportOptions("cortex-m4", 1 << 20, tmp_path / "out", firmware_inputs=3, tflm_dir=tree,
                            cmsis_nn_dir=tree / "third_party" / "cmsis_nn")
    report = export_tflite(proxies / f"{name}.tflite", options, echo=lambda _line: None).report
    firmware, tflm = report["firmware"], report["tflm"]
    assert firmware["bitexact_vs_reference"] and firmware["bitexact_vs_host"]
    assert tflm["target_verified"] and tflm["max_abs_diff_vs_aot"] == 0
    assert tflm["target_arena_used_bytes"] <= tflm["arena_bytes"]
    assert "generated" in firmware["op_kernels"]
