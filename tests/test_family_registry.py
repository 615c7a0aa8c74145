"""A new manifold family is one file plus one registry line: this file defines a cylinder,
registers it, and then uses it through every layer (CLI, hypothesis files, theory, sampling,
a reconciled case) without any other file knowing of it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import sympy as sp
import torch

from llcgeo import manifolds as mf
from llcgeo.numerics.measurements.manifold_data import gaussian_draws, register_sampler
from llcgeo.parse import parse_expression
from llcgeo.theory.affine import AffineSupport
from llcgeo.theory.hypersurface import local_equation
from llcgeo.theory.moments import second_moment
from llcgeo.theory.support import register_support
from llcgeo.validate import positive


@dataclass(frozen=True, repr=False)
class Cylinder(mf.Spec):
    """``x_1^2 + x_2^2 = radius^2``, uniform on the circle, the other coordinates N(0, 1)."""

    d: int
    radius: Fraction = Fraction(1)
    free_dimension: ClassVar[bool] = True

    def __post_init__(self):
        mf.dimension(self.d, minimum=3)
        object.__setattr__(self, "radius", mf.exact(self.radius, "radius"))
        positive(self.radius, "radius")


mf.register_family("cylinder", Cylinder)  # the one registry line


@register_sampler(Cylinder)
def _draw(spec: Cylinder, n: int, generator) -> torch.Tensor:
    a = gaussian_draws(n, spec.d, generator)
    circle = float(spec.radius) * a[:, :2] / a[:, :2].norm(dim=1, keepdim=True)
    return torch.cat([circle, a[:, 2:]], dim=1)


@register_support(Cylinder)
def _hull(spec: Cylinder) -> AffineSupport:
    return AffineSupport(spec.d)  # a circle spans its plane: no affine form vanishes


@second_moment.register(Cylinder)
def _moment(spec: Cylinder) -> sp.Matrix:
    r = sp.Rational(spec.radius.numerator, spec.radius.denominator)
    return sp.diag(r**2 / 2, r**2 / 2, *([1] * (spec.d - 2)))


@local_equation.register(Cylinder)
def _equation(spec: Cylinder, point):
    names = [f"x{i + 1}" for i in range(spec.d)]
    return parse_expression(f"x1**2 + x2**2 - ({spec.radius})**2", names)


# --- the family, used everywhere --------------------------------------------------------------


def test_the_registry_builds_it_by_name_and_refuses_a_clash():
    import pytest

    from llcgeo.errors import SpecError

    assert mf.build("cylinder", d=4, radius=2) == Cylinder(4, 2)
    with pytest.raises(SpecError, match="taken by Sphere"):
        mf.register_family("sphere", Cylinder)
    with pytest.raises(SpecError, match="not a frozen dataclass"):
        mf.register_family("plain", dict)


def test_theory_predicts_the_full_llc_of_a_curved_family():
    from llcgeo.theory import predicted_llc, second_fundamental_form

    p = predicted_llc(Cylinder(4, 2), mf.LinearLayer(3))
    assert (p.llc, p.flat, str(p.closed_form)) == (6, False, "d*m/2")
    shape = second_fundamental_form(Cylinder(4, 2), [2, 0, 0, 0])
    assert shape == sp.diag(0, sp.Rational(1, 2), 0, 0)  # curvature 1 / radius, across the axis


def test_its_data_lie_on_it_with_the_exact_second_moment():
    from llcgeo.numerics import sample

    n = 200_000
    x = sample(Cylinder(3, 2), n, generator=torch.Generator().manual_seed(0))
    assert float((x[:, :2].square().sum(1) - 4).abs().max()) < 1e-12
    exact = torch.tensor(second_moment(Cylinder(3, 2)).tolist(), dtype=torch.float64)
    products = x[:, :, None] * x[:, None, :]
    se = products.std(dim=0) / math.sqrt(n)  # each entry's mean: its own standard error
    assert bool(((products.mean(dim=0) - exact).abs() <= 5 * se).all())


def test_a_case_on_it_is_reconciled_and_agrees():
    from llcgeo.config import SGLDConfig
    from llcgeo.reconcile import Case, reconcile_case

    config = SGLDConfig(eps=2e-4, chains=16, steps=3000, burnin=500)
    result = reconcile_case(Case(Cylinder(3, 2), mf.LinearLayer(2), n=5000, config=config),
                            device="cpu")  # fmt: skip
    assert result.predicted_llc == 3 and result.verdict == "agree", result.reasons


def test_the_command_line_and_hypothesis_files_know_it(capsys):
    from llcgeo.cli import main
    from llcgeo.hypotheses.schema import parse_hypothesis

    assert main(["predict", "--manifold", "cylinder", "--d", "4", "--radius", "2", "--m", "3",
                 "--json"]) == 0  # fmt: skip
    assert '"llc": 6' in capsys.readouterr().out
    h = parse_hypothesis(
        '[manifold]\nfamily = "cylinder"\nd = 3\nradius = 2\n[layer]\nm = 2\n'
        '[claims]\nllc = "m*d/2"\nflat = false\n', name="cyl",
    )  # fmt: skip
    assert h.manifold == Cylinder(3, 2) and h.prediction.llc == 3
