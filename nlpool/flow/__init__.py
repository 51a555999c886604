"""Flows that wire every package together (export, memory_planner, firmware); the CLI and Python callers share them."""
