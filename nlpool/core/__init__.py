"""The base layer: what every package may import, importing nothing of ours.

It owns the file format and arithmetic contracts that more than one package reads or writes: the
one TFLite model reader and writer, the custom ops' contract (names, options, encode/decode),
TFLite's fixed-point helpers, the in-place depthwise kernel's contract (when it applies, its
scratch), the project's error type and memory-size units.
"""

VERSION = "0.1.0"  # the distribution's version (pyproject.toml says the same; a test checks)
