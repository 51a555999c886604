# Convenience targets; the scripts are the source of truth (the README's two commands use them).
.PHONY: setup demo test lint
setup:
	bash scripts/setup.sh
demo: setup
	.venv/bin/nlpool export --target cortex-m7 --sram 512k
test: setup
	bash scripts/test.sh
lint:
	.venv/bin/ruff check .
