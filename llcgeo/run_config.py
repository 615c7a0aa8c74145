"""How a scan of a training run estimates the whole model's LLC at each checkpoint (standard
library only: validating it loads no torch, so the command line can take its defaults).

>>> WholeModelSettings(chains=2).chains
2
>>> WholeModelSettings(singular="maybe")
Traceback (most recent call last):
...
llcgeo.errors.SpecError: singular must be one of ('auto', 'warn', 'sweep'), got 'maybe'
"""

from __future__ import annotations

from dataclasses import dataclass

from llcgeo.config import TARGETS
from llcgeo.errors import SpecError
from llcgeo.validate import between, integer

SINGULAR_MODES = ("auto", "warn", "sweep")  # llcgeo.calibrate's, named here without torch
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
