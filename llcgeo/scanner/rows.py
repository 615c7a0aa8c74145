"""What a scan says: its settings (validated), one row a (norm, reader) pair, each norm's summary,
and the job a worker process receives."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

import torch

from llcgeo.config import DTYPES
from llcgeo.errors import SpecError
from llcgeo.reconcile.model import EstimateSummary
from llcgeo.scanner.certify import (
    Certificate,
)
from llcgeo.theory.calibration import NBETA_FACTOR
from llcgeo.validate import integer, positive

REFINES = ("all", "weight")
NOT_MEASURED = "not measured"  # a row certified and predicted only: no verdict

@dataclass(frozen=True)
class ScanSettings:
    """How hard a scan looks. ``rows``: the samples its loss is taken on (a random subset
    where there are more); ``hessian_directions``: the largest quotient whose Hessian is
    computed whole (a larger one is measured on a block of about that size);
    ``nbeta_factor``: ``nbeta = factor n / log n``, ``n`` the rows the loss averages over (a
    colder posterior keeps the terms beyond the quadratic small, and leaves the LLC
    unchanged)."""

    chains: int = 16
    draws: int = 8000
    max_burnin: int = 2000
    rows: int = 2048
    hessian_directions: int = 1024
    nbeta_factor: float = NBETA_FACTOR
    refine: str = "all"  # "weight": each reader's bias stays frozen
    measure: bool = True  # False: the certificates alone
    only: tuple[str, ...] = ()  # the readers (weight names) to measure; empty: all
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        integer(self.chains, "chains", 2)  # R-hat needs two chains at least
        integer(self.draws, "draws", 1)
        integer(self.max_burnin, "max_burnin", 1)
        integer(self.rows, "rows", 2)
        integer(self.hessian_directions, "hessian_directions", 1)
        positive(self.nbeta_factor, "nbeta_factor")
        integer(self.seed, "seed", 0)
        for name, value, allowed in (("refine", self.refine, REFINES),
                                     ("dtype", self.dtype, DTYPES)):  # fmt: skip
            if value not in allowed:
                raise SpecError(f"{name} must be one of {allowed}, got {value!r}")
        if not isinstance(self.measure, bool):
            raise SpecError(f"measure must be True or False, got {self.measure!r}")
        if isinstance(self.only, str) or not all(isinstance(w, str) for w in self.only):
            raise SpecError(f"only must be a tuple of weight names, got {self.only!r}")

    @classmethod
    def of(cls, **given) -> ScanSettings:
        """Settings from keywords, an unknown one refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise SpecError(f"scan takes no setting {', '.join(map(repr, unknown))}; its "
                            f"settings are {', '.join(sorted(known))}")  # fmt: skip
        return cls(**{k: tuple(v) if k == "only" else v for k, v in given.items()})


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
    eps: float = math.nan
    gamma: float = math.nan
    nbeta: float = math.nan
    verdict: str = "inconclusive"
    reason: str = ""
    block: int | None = None  # the quotient's directions measured, where not all of them
    block_outputs: int | None = None  # the output directions they span

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

    def plain(kind, value):
        return None if value is None else kind(**{k: v for k, v in value.items() if k != "type"})

    fields = {k: v for k, v in record.items() if k != "type"}
    fields["certificate"] = plain(Certificate, fields["certificate"])
    fields["estimate"] = plain(EstimateSummary, fields["estimate"])
    fields["quadratic"] = plain(EstimateSummary, fields["quadratic"])
    return ScanRow(**fields)
