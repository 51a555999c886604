"""Time `plan_model` (PyTorch front end + every plan, no TensorFlow) on every preset and pooling kind.

The planner promises an answer in under a second for any supported model; this prints the time of
each, measured in one process after one warm-up plan (torch's first convolution pays a one-off
set-up cost that a long-lived process pays once).

    .venv/bin/python benchmarks/planner_speed.py
"""

from __future__ import annotations

import time

from memory_planner import plan_model
from nlpool.layers import POOL_KINDS
from nlpool.models import PRESETS, build_model


def main() -> None:
    configs = {name: cfg for name, (cfg, _desc) in PRESETS.items()}
    base = configs["mobilenetv2_035_nlp_imagenet"]
    configs |= {f"mobilenetv2_035_{kind}_224": base.replace(pool=kind) for kind in POOL_KINDS}
    configs |= {"mobilenetv2_100_nlp_s1=1_224": base.replace(width=1.0, s1=1)}
    first = next(iter(configs.values()))
    start = time.perf_counter()
    plan_model(build_model(first), first)
    print(f"warm-up (first plan in the process): {time.perf_counter() - start:.2f} s")
    worst = 0.0
    for name, cfg in configs.items():
        model = build_model(cfg)
        start = time.perf_counter()
        plan = plan_model(model, cfg)
        seconds = time.perf_counter() - start
        worst = max(worst, seconds)
        print(f"{name:<34} {seconds:6.2f} s  ops {len(plan.graph.ops):>4}  arena {plan.peak_bytes:>10,} B")
    print(f"slowest: {worst:.2f} s")


if __name__ == "__main__":
    main()
