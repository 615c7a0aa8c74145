"""The one typed decoder: every record llcgeo stores reads back as what was stored."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest
import torch
from torch import nn

from llcgeo.reconcile.model import EstimateSummary
from llcgeo.scanner import ScanRow, row_of, run_scan
from llcgeo.scanner.checkpoint import CheckpointResult, Trace, WholeModel, checkpoint_of
from llcgeo.serialize import dumps_exact, from_jsonable, loads_exact, to_jsonable


@dataclass(frozen=True)
class Inner:
    value: float
    share: Fraction = Fraction(1, 2)


@dataclass(frozen=True)
class Outer:
    inner: Inner | None
    items: tuple[Inner, ...]
    names: tuple[str, ...] = ()


def _round_trip(obj):
    return loads_exact(dumps_exact(obj))


def test_nested_dataclasses_tuples_fractions_and_none_read_back_equal():
    obj = Outer(Inner(float("nan")), (Inner(1.0, Fraction(3, 7)), Inner(2)), ("a",))
    back = from_jsonable(Outer, _round_trip(obj))
    assert back.items == obj.items and back.names == ("a",)
    assert isinstance(back.items[1].value, float)
    assert back.inner.value != back.inner.value  # NaN survives
    assert from_jsonable(Outer, _round_trip(Outer(None, ()))) == Outer(None, ())


@pytest.mark.parametrize(("record", "named"), [
    ({"type": "Inner", "value": 1.0, "colour": "red"}, "no field 'colour'"),
    ({"type": "Outer", "value": 1.0}, "a record of a Outer where a Inner belongs"),
    ({"type": "Inner", "value": "high"}, "expected a float"),
    ([1.0], "a Inner is a JSON object"),
])  # fmt: skip
def test_a_record_of_the_wrong_shape_is_refused_naming_what(record, named):
    with pytest.raises(ValueError, match=named):
        from_jsonable(Inner, record)


def test_a_missing_field_without_a_default_is_refused():
    with pytest.raises(TypeError, match="value"):
        from_jsonable(Inner, {"type": "Inner"})


def test_a_scans_rows_and_a_checkpoint_read_back_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    result = run_scan(model, x, model(x).detach())
    assert [row_of(_round_trip(r)) for r in result.rows] == list(result.rows)
    assert all(isinstance(r, ScanRow) for r in result.rows)
    trace = Trace(((1.0, 2.0), (3.0, float("inf"))), 0.5, 10.0, 4, 1, (1,))
    estimate = EstimateSummary(1.0, 0.1, 1.01, 500.0, 0, 2.0)
    whole = WholeModel(estimate, None, ("why",), (), "", trace)
    checkpoint = CheckpointResult(3, "step 3", "f00", result, whole, (None,) * len(result.rows))
    back = checkpoint_of(_round_trip(to_jsonable(checkpoint)))
    assert back.scan.rows == result.rows and back.scan.norms == result.norms
    assert back.model.trace.loss[1][0] == 3.0 and back.model.trace.diverged == (1,)
    assert back.scan.settings == result.settings
