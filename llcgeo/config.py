"""The SGLD settings of an LLC estimate, validated once (standard library only: validating them
loads no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

from llcgeo.errors import SpecError
from llcgeo.limits import MAX_HESSIAN_DIRECTIONS
from llcgeo.validate import between, integer, non_negative, positive

DTYPES = ("float64", "float32")
# "epochs": a fresh permutation each epoch, cut into batches (torch's DataLoader, as devinterp);
# "independent": each step draws its batch anew, with replacement (the exact minibatch reference)
BATCH_DRAWS = ("epochs", "independent")


class SamplerTraits(NamedTuple):
    """What a sampler is, for validation and verdicts (its kernel: ``numerics.sampling.kernels``).

    ``metropolis``: an exact accept/reject, so no step-size bias (and the full batch, an exact
    noise level and no box, which its target needs); ``reference``: the exact expectation of
    its estimate is known (:mod:`llcgeo.theory.sgld`); ``stable_below_bound``: its steps are
    stable while ``eps (nbeta h_max + gamma)`` is below ``thresholds.STABILITY_BOUND``."""

    metropolis: bool = False
    reference: bool = True
    stable_below_bound: bool = True


# "sgld": Langevin steps, biased by eps; "mala": the same proposal with an exact Metropolis test;
# "rmsprop": SGLD with a per-coordinate RMSProp step size (llcgeo.numerics.sampling.rmsprop)
SAMPLER_TRAITS = {
    "sgld": SamplerTraits(),
    "mala": SamplerTraits(metropolis=True),
    "rmsprop": SamplerTraits(reference=False, stable_below_bound=False),
}
SAMPLERS = tuple(SAMPLER_TRAITS)


class Targets(NamedTuple):
    """What calibrated settings aim at, as fractions of the LLC (``llcgeo calibrate``)."""

    bias: float = 0.05  # step-size bias
    localization: float = 0.05  # localization deficit
    se: float = 0.02  # standard error of the mean over the chains


TARGETS = Targets()
DEVICES = ("auto", "cpu", "cuda")  # and "cuda:N" for the N-th GPU


def check_device(device) -> str:
    """The name of a device as asked for (availability is checked where torch is loaded:
    :func:`llcgeo.numerics.device.resolve_device`).

    >>> check_device("cuda:1")
    'cuda:1'
    """
    name = str(device)
    kind, _, index = name.partition(":")
    if name in DEVICES or (kind == "cuda" and index.isdigit()):
        return name
    raise SpecError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {name!r}")


@dataclass(frozen=True)
class SGLDConfig:
    """SGLD settings for ``w <- w - (eps/2)(nbeta grad L + gamma (w - w*)) + sqrt(eps) noise N``.

    ``nbeta=None`` means ``n / log n``; ``batch_size=None`` means full batch, and ``batches``
    says how minibatches are drawn (``BATCH_DRAWS``); ``sampler="mala"`` adds an exact
    Metropolis test to each step (full batch only), a reference free of step-size bias;
    ``sampler="rmsprop"`` preconditions each coordinate by a running mean square of its drift
    (decay ``rmsprop_decay``, floor ``rmsprop_floor``; :mod:`llcgeo.numerics.sampling.rmsprop`).
    ``acceptance=True`` records the Metropolis acceptance probability of every SGLD step
    (:mod:`llcgeo.numerics.sampling.acceptance`), a step-size diagnostic. The
    default
    ``eps = 1e-4`` keeps ``eps * nbeta * h`` near 0.2 for unit-scale data at ``n = 20 000``; the
    estimator's finite-step bias grows like ``1 / (1 - eps (nbeta h + gamma) / 4)``. The loss is
    recorded at ``w_0 = w*, w_1, ..., w_{steps-1}`` and draws ``burnin..steps-1`` are averaged.

    >>> SGLDConfig(eps=1e-3, chains=2, steps=50, burnin=10).draws
    40
    """

    eps: float = 1e-4
    gamma: float = 1.0
    nbeta: float | None = None
    chains: int = 4
    steps: int = 1000
    burnin: int = 100
    batch_size: int | None = None
    noise_level: float = 1.0
    dtype: str = "float64"
    bounding_box: float | None = None
    batches: str = "epochs"
    sampler: str = "sgld"
    rmsprop_decay: float = 0.99
    rmsprop_floor: float = 1e-8
    acceptance: bool = False

    def __post_init__(self):
        positive(self.eps, "eps")
        non_negative(self.gamma, "gamma")
        if self.nbeta is not None:
            positive(self.nbeta, "nbeta")
        integer(self.chains, "chains", 1)
        integer(self.steps, "steps", 1)
        integer(self.burnin, "burnin", 0)
        if self.burnin >= self.steps:
            raise SpecError(f"burnin ({self.burnin}) must be smaller than steps ({self.steps})")
        if self.batch_size is not None:
            integer(self.batch_size, "batch_size", 1)
        positive(self.noise_level, "noise_level")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.bounding_box is not None:
            positive(self.bounding_box, "bounding_box")
        if self.batches not in BATCH_DRAWS:
            raise SpecError(f"batches must be one of {BATCH_DRAWS}, got {self.batches!r}")
        self._check_sampler()

    def _check_sampler(self) -> None:
        if self.sampler not in SAMPLERS:
            raise SpecError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        between(self.rmsprop_decay, "rmsprop_decay", 0, 1, open_high=True)
        positive(self.rmsprop_floor, "rmsprop_floor")
        if not isinstance(self.acceptance, bool):
            raise SpecError(f"acceptance must be True or False, got {self.acceptance!r}")
        traits = self.traits
        plain = traits.reference and not traits.metropolis
        if self.acceptance and (not plain or self.bounding_box is not None):
            raise SpecError("acceptance is watched for plain SGLD steps without a bounding box")
        if not traits.reference and self.bounding_box is not None:
            raise SpecError(f"the {self.sampler} sampler takes no bounding box")
        if not traits.metropolis:
            return
        if self.batch_size is not None:
            raise SpecError("MALA needs the full batch: its accept test uses the exact loss")
        if self.bounding_box is not None or self.noise_level != 1:
            raise SpecError(
                "MALA samples exp(-U) exactly: a bounding box or a noise level other than 1 "
                "would change its target"
            )

    @property
    def traits(self) -> SamplerTraits:
        return SAMPLER_TRAITS[self.sampler]

    @property
    def draws(self) -> int:
        return self.steps - self.burnin

    def resolved_nbeta(self, n: int) -> float:
        """``nbeta``, or the default ``n / log n`` for ``n`` samples (``n >= 2``)."""
        if self.nbeta is not None:
            return float(self.nbeta)
        if n < 2:
            raise SpecError(f"the default nbeta = n / log n needs n >= 2, got n = {n}")
        return n / math.log(n)


# the command line's SGLD settings (estimate, verify, calibrate): a CLI run is judged as it
# stands, and SGLDConfig()'s 4 x 900 draws leave the bulk ESS below thresholds.ESS_MIN at its eps
# (`llcgeo verify --manifold rmsnorm --d 8 --m 3`: 313, inconclusive; these 8 x 2 500: ~2 300)
CLI_SGLD = SGLDConfig(chains=8, steps=3000, burnin=500)


# a trained network's (or a scanned reader's) nbeta is NBETA_FACTOR n / log n: the loss's terms
# beyond the quadratic shift the estimate by O(1/nbeta), and a colder posterior keeps that shift
# small beside the standard error while leaving the LLC (a property of the loss) as it is
NBETA_FACTOR = 50.0
REFINES = ("all", "weight")


@dataclass(frozen=True)
class ScanSettings:
    """How hard a scan looks. ``rows``: the samples its loss is taken on (a random subset
    where there are more); ``hessian_directions``: the largest quotient of a reader inside
    the network whose Hessian is computed whole (by Hessian-vector products, or from its
    structure where what follows acts row by row; a larger one is measured on a block of
    about that size; a head the cross-entropy reads has its Hessian from its structure, whole
    up to ``MAX_HESSIAN_DIRECTIONS`` at least);
    ``nbeta_factor``: ``nbeta = factor n / log n``, ``n`` the rows the loss averages over (a
    colder posterior keeps the terms beyond the quadratic small, and leaves the LLC
    unchanged)."""

    chains: int = 16
    draws: int = 20_000  # at most, a chain; the ESS rule sets how many
    steps: int | None = None  # given: each chain's steps in all (the burn-in from the theory)
    rows: int = 2048
    hessian_directions: int = MAX_HESSIAN_DIRECTIONS
    nbeta_factor: float = NBETA_FACTOR
    nbeta: float | None = None  # given: kept (not raised); None: nbeta_factor n / log n
    eps: float | None = None  # in whitened coordinates; None: from the exact theory
    gamma: float | None = None  # likewise
    refine: str = "all"  # "weight": each reader's bias stays frozen
    measure: bool = True  # False: the certificates alone
    only: tuple[str, ...] = ()  # the readers (weight names) to sample (all are predicted); (): all
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        integer(self.chains, "chains", 2)  # R-hat needs two chains at least
        integer(self.draws, "draws", 1)
        integer(self.rows, "rows", 2)
        integer(self.hessian_directions, "hessian_directions", 1)
        positive(self.nbeta_factor, "nbeta_factor")
        if self.steps is not None:
            integer(self.steps, "steps", 2)
        for name in ("nbeta", "eps"):
            if getattr(self, name) is not None:
                positive(getattr(self, name), name)
        if self.gamma is not None:
            non_negative(self.gamma, "gamma")
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


SINGULAR_MODES = ("auto", "warn", "sweep")  # how llcgeo.calibrate treats a singular model
KEPT_DRAWS = 1000  # at most, a chain: the thinned loss trace a run's record keeps for ArviZ


@dataclass(frozen=True)
class WholeModelSettings:
    """The whole model's LLC at a checkpoint is :func:`llcgeo.estimate_llc` at the settings
    :func:`llcgeo.calibrate` gives for that checkpoint, aiming at these targets (fractions of
    the LLC: step-size bias, localization deficit, standard error) with ``chains`` chains;
    ``singular`` is calibrate's (``"auto"`` sweeps gamma where more directions are flat than
    a symmetry explains, ``"warn"`` keeps the quadratic choice and says so)."""

    chains: int = 4
    bias: float = TARGETS.bias
    localization: float = TARGETS.localization
    se: float = TARGETS.se
    singular: str = "auto"
    lanczos_steps: int = 100

    def __post_init__(self):
        integer(self.chains, "chains", 2)  # R-hat needs two chains at least
        for name in ("bias", "localization", "se"):
            between(getattr(self, name), name, 0, 1, open_low=True, open_high=True)
        integer(self.lanczos_steps, "lanczos_steps", 2)
        if self.singular not in SINGULAR_MODES:
            raise SpecError(f"singular must be one of {SINGULAR_MODES}, got {self.singular!r}")
