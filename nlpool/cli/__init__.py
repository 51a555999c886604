"""The `nlpool` command line: a thin layer that wires the packages together.

Every failure the user can cause ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading

import click

from nlpool.core.errors import NlpoolError

from ..core import VERSION as __version__
from .claims_cmd import claims_command
from .export_cmd import export_command
from .models_cmd import models_command, summary_command
from .plan_cmd import plan_command
from .train_cmd import train_command
from .visualize_cmd import visualize_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nlpool")
def cli() -> None:
    """Self-attentive pooling networks from PyTorch to Cortex-M microcontrollers."""


cli.add_command(claims_command)
cli.add_command(export_command)
cli.add_command(models_command)
cli.add_command(plan_command)
cli.add_command(summary_command)
cli.add_command(train_command)
cli.add_command(visualize_command)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, CI cancellation, `docker stop`), raised where Ctrl-C would be so the same clean-up runs."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn every user error into one line and an exit code."""
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(message: str) -> str:
    """Messages are one line on stderr (Click lists choices on several; scripts read the first line only)."""
    return " ".join(message.split())


def _run(argv: list[str] | None) -> None:
    try:
        code = cli.main(args=argv, prog_name="nlpool", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as err:  # bare `nlpool`: the help, not an "error: Usage: ..." dump
        err.show()
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(f"error: {_one_line(err.format_message())}", err=True)
        sys.exit(err.exit_code)
    except NlpoolError as err:
        click.echo(f"error: {_one_line(str(err))}", err=True)
        sys.exit(1)
    except (click.Abort, KeyboardInterrupt) as err:  # Click turns Ctrl-C into Abort; work folders are gone by now
        terminated = isinstance(err, Terminated) or isinstance(err.__cause__, Terminated)
        click.echo(f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}: stopped, no half-written output left", err=True)
        sys.exit(143 if terminated else 130)
    sys.exit(code if isinstance(code, int) else 0)
