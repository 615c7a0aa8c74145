"""The result of an LLC estimate: a frozen, validated record of plain values and arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llcgeo.config import SGLDConfig
from llcgeo.errors import EstimationError


def _frozen_array(values, what: str, ndim: int) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != ndim:
        raise EstimationError(f"{what} must have {ndim} dimension(s), got shape {array.shape}")
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class LLCEstimate:
    """An SGLD estimate of the local learning coefficient.

    Per chain ``c``: ``per_chain[c] = nbeta * (mean_k loss_trace[c, k] - init_loss)`` over draws
    ``k = burnin..steps-1`` (``loss_trace`` is ``L(w_k)``, ``init_loss`` the exact full-batch
    ``L(w*)``). ``mean``/``se`` are over the chains not in ``diverged_chains``; ``rhat`` (rank-
    normalized, the larger of bulk and folded), ``ess`` (bulk) and ``ess_tail`` are those of the
    kept chains' loss traces (:mod:`llcgeo.numerics.sampling.diagnostics`); ``warnings`` say what
    deserves a look.

    >>> e = LLCEstimate(mean=1.0, se=0.1, per_chain=[0.9, 1.1], loss_trace=[[1.0], [1.0]],
    ...                 init_loss=0.5, diverged_chains=(), rhat=1.0, ess=2.0, nbeta=2.0, n=10,
    ...                 seed=0, config=SGLDConfig(chains=2, steps=2, burnin=1), device="cpu",
    ...                 seconds=0.0)
    >>> e.per_chain.tolist(), e.chains_kept
    ([0.9, 1.1], 2)
    """

    mean: float
    se: float
    per_chain: np.ndarray
    loss_trace: np.ndarray
    init_loss: float
    diverged_chains: tuple[int, ...]
    rhat: float
    ess: float
    nbeta: float
    n: int
    seed: int
    config: SGLDConfig
    device: str
    seconds: float
    warnings: tuple[str, ...] = ()
    # MALA's accepted share of proposals; for SGLD with acceptance=True, the mean Metropolis
    # acceptance probability of its steps; else None
    acceptance_rate: float | None = None
    ess_tail: float = float("nan")

    def __post_init__(self):
        per_chain = _frozen_array(self.per_chain, "per_chain", 1)
        trace = _frozen_array(self.loss_trace, "loss_trace", 2)
        expected = (self.config.chains, self.config.draws)
        if trace.shape != expected or per_chain.shape != expected[:1]:
            raise EstimationError(
                f"loss_trace {trace.shape} and per_chain {per_chain.shape} do not match "
                f"(chains, draws) = {expected} of the config"
            )
        bad = tuple(int(i) for i in self.diverged_chains)
        if any(not 0 <= i < expected[0] for i in bad) or len(set(bad)) != len(bad):
            raise EstimationError(f"diverged_chains {bad} are not distinct chain indices")
        object.__setattr__(self, "per_chain", per_chain)
        object.__setattr__(self, "loss_trace", trace)
        object.__setattr__(self, "diverged_chains", bad)
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))
        if (
            not math.isnan(self.mean)
            and not bad
            and not math.isclose(self.mean, float(per_chain.mean()), rel_tol=1e-9, abs_tol=1e-12)
        ):
            raise EstimationError("mean is not the mean of per_chain over the kept chains")

    @property
    def chains_kept(self) -> int:
        return self.config.chains - len(self.diverged_chains)

    def to_dict(self) -> dict:
        """Plain-JSON fields (arrays as lists, NaN as ``"nan"``), for ``--json`` output."""
        from llcgeo.serialize import to_jsonable

        return to_jsonable(
            {
                "llc_mean": self.mean,
                "llc_se": self.se,
                "per_chain": self.per_chain.tolist(),
                "diverged_chains": list(self.diverged_chains),
                "rhat": self.rhat,
                "ess": self.ess,
                "ess_tail": self.ess_tail,
                "acceptance_rate": self.acceptance_rate,
                "init_loss": self.init_loss,
                "nbeta": self.nbeta,
                "n": self.n,
                "seed": self.seed,
                "config": to_jsonable(self.config),
                "device": self.device,
                "seconds": self.seconds,
                "warnings": list(self.warnings),
            }
        )
