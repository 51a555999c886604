"""Peak-activation memory planning: tensor lifetimes, arena plans, per-layer reports, SRAM verdicts."""
