"""Run one function in a child Python process, so native code that ends its process cannot end ours.

The interpreters nlpool runs on the host (LiteRT, TFLM's x86 build) are C++ that aborts on a failed
check and can crash on a model someone else made. Called in a child, such a death is one NlpoolError
naming what was running. The child is a fresh `python -m nlpool.core.child_process` (not
multiprocessing's spawn, which re-imports the caller's `__main__` and breaks scripts without a
`__main__` guard); arguments and result travel pickled over its stdin and stdout.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
from typing import Any

from nlpool.core.errors import NlpoolError


def call_in_child(target: str, args: tuple[Any, ...], what: str) -> Any:
    """`module:function(*args)` in a child process; its exception is raised here as it was there, its
    death (a signal or an exit without a result) as an NlpoolError about `what`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-m", __name__], input=pickle.dumps((target, args)), capture_output=True, env=env)
    if done.returncode == 0:
        ok, value = pickle.loads(done.stdout)
        if ok:
            return value
        raise value
    cause = (f"signal {signal.Signals(-done.returncode).name}" if done.returncode < 0 and -done.returncode in signal.valid_signals()
             else f"exit status {done.returncode}")
    said = done.stderr.decode(errors="replace").strip().splitlines()
    detail = f": it said '{said[-1][:200]}'" if said else ""
    raise NlpoolError(f"{what} ended its process ({cause}, a crash or abort in native code){detail}; nothing was computed")


def _main() -> None:
    result_fd = os.dup(1)
    os.dup2(2, 1)  # what the function or its native code prints goes to stderr, not into the result
    target, args = pickle.loads(sys.stdin.buffer.read())
    module, function = target.split(":")
    try:
        result: tuple[bool, Any] = (True, getattr(importlib.import_module(module), function)(*args))
    except Exception as err:  # handed to the parent, which raises it
        result = (False, err)
    with os.fdopen(result_fd, "wb") as out:
        out.write(pickle.dumps(result))


if __name__ == "__main__":
    _main()
