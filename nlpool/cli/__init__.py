"""The `nlpool` command line: a thin layer that wires the packages together.

Every failure the user can cause ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn every user error into one line and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="nlpool", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as err:  # bare `nlpool`: the help, not an "error: Usage: ..." dump
        err.show()
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except NlpoolError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
