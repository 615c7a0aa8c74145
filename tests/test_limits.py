"""The forked, killed-at-the-deadline worker that bounds every exact derivation."""

from __future__ import annotations

import os
import time

import pytest

from llcgeo.errors import DerivationError, SpecError
from llcgeo.limits import run_bounded

HANG_S = 60.0  # each call below needs well under a second


def _sum(a, b):
    return a + b


def _refuse(text):
    raise SpecError(text)


def _die():
    os._exit(3)


def _spin_in_c():
    # one C call that checks no signal: what sympy's heuristic GCD does with huge integers
    return (7**4_000_000) * (11**4_000_000) % 1000


def test_the_answer_comes_back_from_the_child():
    assert run_bounded(_sum, 2, 3, seconds=HANG_S, what="a sum") == 5


def test_the_childs_error_is_raised_in_the_caller_unchanged():
    with pytest.raises(SpecError, match="^bad spec$"):
        run_bounded(_refuse, "bad spec", seconds=HANG_S, what="a refusal")


def test_a_child_that_dies_is_reported_not_hung():
    with pytest.raises(DerivationError, match="ended without an answer"):
        run_bounded(_die, seconds=HANG_S, what="a crash")


def test_one_long_c_call_is_stopped_at_the_deadline():
    start = time.monotonic()
    with pytest.raises(DerivationError, match="time limit of 0.2 s"):
        run_bounded(_spin_in_c, seconds=0.2, what="a big product")
    assert time.monotonic() - start < HANG_S
