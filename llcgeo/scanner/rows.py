"""What a scan says: its settings (validated), one row a (norm, reader) pair, each norm's summary,
and the job a worker process receives."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

from llcgeo.config import ScanSettings
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.scanner.certify import (
    Certificate,
)
from llcgeo.serialize import from_jsonable

NOT_MEASURED = "not measured"  # a row certified and predicted only: no verdict

@dataclass(frozen=True)
class ScanRow:
    """One (norm, reader) pair: what is certified, predicted, measured, and the verdict."""

    norm: str
    kind: str
    reader: str
    outputs: int
    inputs: int
    bias: bool  # the reader's bias moves
    tied: bool
    logits: bool
    certificate: Certificate
    image: str
    low: str  # the LLC's proven interval, as exact fractions
    high: str
    rank: int | None = None
    gap: float | None = None
    loss_before: float | None = None  # the reader's loss at the trained point and at its refit
    loss_after: float | None = None
    estimate: EstimateSummary | None = None
    quadratic: EstimateSummary | None = None
    shift: float = math.nan
    shift_se: float = math.nan
    expected: float = math.nan
    expected_se: float = math.nan
    eps: float = math.nan  # the settings, in whitened coordinates (w = w* + P u)
    gamma: float = math.nan
    nbeta: float = math.nan
    burnin: int | None = None
    steps: int | None = None
    sampler: str = ""  # the sampler's own check: the quadratic run against its expectation
    verdict: str = "inconclusive"
    reason: str = ""
    block: int | None = None  # the quotient's directions measured, where not all of them
    block_outputs: int | None = None  # the output directions they span
    block_why: str = ""  # where the run's budget, not the directions limit, made it a block

    @property
    def exact(self) -> bool:
        return self.low == self.high

    @property
    def block_high(self) -> str:
        """The upper end of the measured part's wrLLC: the reader's, or its block's (the
        lower end is ``low`` for both: half the measured Hessian's rank)."""
        return self.high if self.block is None else str(Fraction(self.block, 2))


@dataclass(frozen=True)
class NormSummary:
    name: str
    kind: str
    width: int
    readers: tuple[str, ...]
    other_uses: tuple[str, ...]
    certified_drop: str  # the sum of its readers' certified drops against Gaussian features
    note: str = ""


@dataclass(frozen=True)
class ScanResult:
    rows: tuple[ScanRow, ...]
    norms: tuple[NormSummary, ...]
    n: int
    loss: str
    settings: ScanSettings
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PairJob:
    """One (norm, reader) pair for a worker process: the traced program in ``torch.export``'s
    own format (a traced graph does not pickle), the scan's data, loss and settings."""

    program: bytes
    x: Any
    y: torch.Tensor
    loss: Any
    settings: ScanSettings
    pair: int


def row_of(record: dict) -> ScanRow:
    """A :class:`ScanRow` from its plain record (a worker's result)."""
    return from_jsonable(ScanRow, record)
