"""Parameters and MACs of the default model with each pooling kind: what each pooling layer costs, in one table.

    .venv/bin/python benchmarks/pool_costs.py [nlpool model flags, e.g. --arch resnet18 --input-size 128]

Every row is the default preset (MobileNetV2-0.35x, s1 = 2, inner placement, 96x96, 10 classes) with
only the pooling kind changed; counts come from `nlpool.summary.summarize`, so they are the numbers
`nlpool summary` shows. MACs count convolutions, linear layers and the two attention matmuls; the
element-wise work of the pools (exp, sigmoid, divisions, max/avg windows, RNN gates) is not counted.
"strided" is the original network: its stage-first blocks are strided and it has no pooling layers.
"""

from __future__ import annotations

import argparse

from nlpool.layers import POOL_KINDS
from nlpool.models import DEFAULT_PRESET, build_model, preset_config
from nlpool.summary import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch")
    parser.add_argument("--width", type=float)
    parser.add_argument("--s1", type=int)
    parser.add_argument("--placement")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--num-classes", type=int)
    args = parser.parse_args()
    base = preset_config(DEFAULT_PRESET).replace(**{k: v for k, v in vars(args).items() if v is not None})
    print(
        f"{base.arch} width={base.width} s1={base.s1} placement={base.placement} input={base.input_size} classes={base.num_classes}"
    )
    header = f"{'pool':<9} {'params':>11} {'MACs':>13} {'pool params':>12} {'pool MACs':>12} {'peak act. (int8 B)':>19}"
    print(header)
    print("-" * len(header))
    for kind in POOL_KINDS:
        cfg = base.replace(pool=kind).validated()
        records, totals = summarize(build_model(cfg), cfg)
        pools = [r for r in records if r.name.endswith("_pool")]
        print(
            f"{kind:<9} {totals['params']:>11,} {totals['macs']:>13,} {sum(r.params for r in pools):>12,}"
            f" {sum(r.macs for r in pools):>12,} {totals['max_activation_bytes']:>19,}"
        )


if __name__ == "__main__":
    main()
