"""Flag values several commands share, parsed once so a bad value is a usage error (exit 2) everywhere."""

from __future__ import annotations

from collections.abc import Callable

import click

from nlpool.core.checks import Number, number
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


def in_range(low: float, high: float) -> Callable[[click.Context, click.Parameter, Number | None], Number | None]:
    """Click callback: a finite number in low..high (nlpool.core.checks.number); NaN or out of range is a usage error."""

    def check(_context: click.Context, param: click.Parameter, value: Number | None) -> Number | None:
        if value is None:
            return None
        try:
            return number(param.opts[0], value, low, high)
        except NlpoolError as err:
            raise click.BadParameter(str(err)) from None

    return check
