"""A function run in a child process: its result and its exceptions come back; its process's death is one line."""

from __future__ import annotations

import numpy as np
import pytest

from nlpool.core.child_process import call_in_child
from nlpool.core.errors import NlpoolError


def test_the_result_comes_back_even_when_the_function_prints():
    assert call_in_child("builtins:print", ("noise on stdout",), "print") is None
    assert call_in_child("nlpool.core.units:parse_size", ("512k",), "parse_size") == 512 * 1024
    values = call_in_child("numpy:arange", (5,), "arange")
    assert np.array_equal(values, np.arange(5))


def test_an_exception_in_the_child_is_raised_as_it_was():
    with pytest.raises(Exception, match="bogus") as raised:
        call_in_child("nlpool.core.units:parse_size", ("bogus",), "parse_size")
    assert not isinstance(raised.value, NlpoolError) or "ended its process" not in str(raised.value)


def test_a_native_abort_is_one_line_naming_what_ran():
    with pytest.raises(NlpoolError) as died:
        call_in_child("os:abort", (), "TFLM's interpreter on model.tflite")
    message = str(died.value)
    assert message.startswith("TFLM's interpreter on model.tflite ended its process (signal SIGABRT")
    assert "\n" not in message
