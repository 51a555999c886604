"""Flag values several commands share, parsed once so a bad value is a usage error (exit 2) everywhere."""

from __future__ import annotations

import click

from nlpool.core.errors import NlpoolError
from nlpool.core.units import parse_size


def size_param(_context: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """Click callback: a memory size such as 512k, 1m or 524288 in bytes; a bad one is a usage error."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except NlpoolError as err:
        raise click.BadParameter(str(err)) from None
