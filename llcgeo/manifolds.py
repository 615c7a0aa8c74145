"""Manifold specifications: the vocabulary that ``theory``, ``numerics`` and ``reconcile`` share.

Each spec is a frozen, validated dataclass that fixes both a *set* (the support) and the *data
distribution on it* that the samplers draw from, so that a prediction and a measurement always
speak of the same thing. Numbers are held exactly as ``Fraction``; expressions as inert
:mod:`llcgeo.expr` trees. This module needs only the standard library.

=====================  =====================================================================
spec                   data distribution (``a ~ N(0, I_d)`` throughout)
=====================  =====================================================================
Gaussian(d)            ``x = a``
LayerNormImage         ``x = gain * (a - mean(a)) / sqrt(var(a) + eps) + bias`` (var: 1/d)
RMSNormImage           ``x = gain * a / sqrt(mean(a**2) + eps)``
Sphere(d, radius)      ``x = radius * a / |a|`` (uniform on the sphere)
Simplex(d)             ``x = softmax(a)`` (the open probability simplex)
Ellipsoid(d, axes)     ``x = axes * a / |a|`` (on the surface ``sum (x_i/axes_i)**2 = 1``)
Hyperplane(n, c)       ``a`` projected orthogonally onto ``{n . x = c}``
ImplicitHypersurface   ``scale * a`` projected onto ``{F = 0}`` by Newton steps; only *regular*
                       zeros are kept (``grad F != 0``, see ``REGULAR_FLOOR``)
ParametricManifold     ``x = phi(t)``, ``t_j ~ Uniform(ranges_j)``
BumpedHyperplane       ``u = a[:d-1]``; ``x = (u, h(u_1))`` with ``h = kappa/2 * u_1**2`` where
                       ``|u_1| < c`` and ``h = 0`` elsewhere; ``P(|u_1| < c) = fraction``
=====================  =====================================================================

>>> LayerNormImage(4).d
4
>>> BumpedHyperplane(3, kappa="1/2", fraction="0.25").kappa
Fraction(1, 2)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from fractions import Fraction
from statistics import NormalDist
from typing import Any, ClassVar

from llcgeo.errors import LLCGeoError, SpecError
from llcgeo.expr import EXPR_TYPES, Expr, is_polynomial, to_text, variables
from llcgeo.limits import (
    MAX_DIMENSION,
    MAX_SAMPLES,
    check_expression,
    check_number,
    check_variables,
)
from llcgeo.validate import between, entries, integer, non_negative, positive

# The data of an implicit hypersurface are its regular zeros: F(x) = 0 and grad F(x) != 0. In
# floating point a zero counts as regular when the first-order distance to where the gradient
# vanishes, |grad F(x)| h / |grad F(x + h u) - grad F(x)| (h = REGULAR_PROBE * scale, u the
# fixed direction of regular_probe), is at least REGULAR_FLOOR * scale. Newton steps that stall
# on a singular zero (an isolated point, a line on which F only touches zero, any repeated
# factor) stop within rounding of it, 1e-15 * scale or so; a regular zero passes unless it lies
# within 1e-6 * scale of a singular one, a set of no mass. So the theory counts exactly the
# factors that appear once and change sign.
REGULAR_FLOOR = 1e-6
REGULAR_PROBE = 1e-3
# a Newton point has converged when the Newton step |F| / |grad F| is below this (relative to
# 1 + max |x|): |F| alone is tiny near any zero of high order
NEWTON_TOLERANCE = 1e-10


def regular_zeros(value, slope, change, size, scale: float):
    """Which points are regular zeros, for arrays of either library (numpy or torch): the
    Newton step ``|F| / slope`` within ``NEWTON_TOLERANCE * size`` (``slope = |grad F(x)|``,
    ``size = 1 + max |x|``), and the first-order distance ``slope h / change`` to where the
    gradient vanishes at least ``REGULAR_FLOOR * scale`` (``change = |grad F(x + h u) -
    grad F(x)|``, ``h = REGULAR_PROBE * scale``, ``u`` of :func:`regular_probe`)."""
    converged = abs(value) <= NEWTON_TOLERANCE * size * slope
    return converged & (slope * (REGULAR_PROBE * scale) >= REGULAR_FLOOR * scale * change)


def regular_probe(d: int) -> list[float]:
    """The unit direction ``u`` of the regularity test: fixed (so draws do not depend on it) and
    irrational, so that no rational geometry is orthogonal to it."""
    u = [math.sqrt(j + 2) - math.floor(math.sqrt(j + 2)) + 0.5 for j in range(d)]
    norm = math.sqrt(sum(v * v for v in u))
    return [v / norm for v in u]


def exact(value: Any, what: str) -> Fraction:
    """``value`` as an exact ``Fraction``, through the parser's checked conversion (so every
    number of every entry has the same digit limit); floats are read as the decimal they print
    as, text as a constant expression such as ``"1/3"``."""
    from llcgeo.parse import parse_number

    if isinstance(value, bool):
        raise SpecError(f"{what} must be a number, got the boolean {value!r}")
    if isinstance(value, Fraction):
        return check_number(value, what)
    if not isinstance(value, (int, float, str)):
        value = str(value)  # e.g. a numpy or sympy number: read back as text
    try:
        return parse_number(value, what)
    except LLCGeoError as err:
        raise SpecError(str(err)) from None


def exact_vector(values: Iterable[Any] | None, what: str, length: int | None = None):
    """A tuple of exact numbers of the given length, or ``None``."""
    return None if values is None else entries(values, what, exact, length)


def dimension(value: Any, what: str = "d", minimum: int = 1) -> int:
    """A validated integer dimension."""
    integer(value, what, minimum)
    if value > MAX_DIMENSION:
        raise SpecError(f"{what} = {value} is larger than llcgeo supports ({MAX_DIMENSION})")
    return value


def _shown(value: Any) -> str:
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, EXPR_TYPES):
        return repr(to_text(value))
    return repr(value)


class Spec:
    """Readable reprs: exact numbers as ``1/3``, expressions as text, defaults left out.
    ``free_dimension``: the family exists in every dimension, so closed forms keep ``d``
    symbolic."""

    free_dimension: ClassVar[bool] = False

    def __repr__(self) -> str:
        shown = [
            f"{f.name}={_shown(getattr(self, f.name))}"
            for f in fields(self)
            if f.default is MISSING or getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _expression(value: Any, names: tuple[str, ...], what: str) -> Expr:
    if isinstance(value, EXPR_TYPES):
        unknown = variables(value) - set(names)
        if unknown:
            raise SpecError(f"{what} uses undeclared names {sorted(unknown)}")
        return check_expression(value, what)
    if not isinstance(value, str):
        value = str(value)  # e.g. a sympy expression: re-read through the safe parser
    from llcgeo.parse import parse_expression

    return check_expression(parse_expression(value, names, what=what), what)


def _names(values: Iterable[Any], what: str) -> tuple[str, ...]:
    """Declared names in Unicode NFKC form, as Python's parser reads the expressions."""
    from llcgeo.parse import normalized_name

    if isinstance(values, str):
        values = values.replace(",", " ").split()
    given = tuple(str(v) for v in values)
    if not given:
        raise SpecError(f"{what} must name at least one variable")
    check_variables(len(given), what)
    out = tuple(normalized_name(v) for v in given)
    for name, written in zip(out, given):
        if not name.isidentifier() or name.startswith("_"):
            raise SpecError(f"{what}: {written!r} is not a valid variable name")
    for i, name in enumerate(out):
        if name in out[:i]:
            first = given[out.index(name)]
            same = "repeats" if first == given[i] else "after Unicode normalization (NFKC) repeats"
            raise SpecError(f"{what} {same} a name: {first!r} and {given[i]!r}")
    return out


@dataclass(frozen=True, repr=False)
class Gaussian(Spec):
    """Unconstrained data: ``x ~ N(0, I_d)``."""

    free_dimension: ClassVar[bool] = True

    d: int

    def __post_init__(self):
        dimension(self.d)


@dataclass(frozen=True, repr=False)
class LayerNormImage(Spec):
    """The image of LayerNorm on Gaussian pre-activations; ``gain``/``bias`` default to 1/0."""

    free_dimension: ClassVar[bool] = True

    d: int
    gain: tuple[Fraction, ...] | None = None
    bias: tuple[Fraction, ...] | None = None
    eps: Fraction = Fraction(0)

    def __post_init__(self):
        dimension(self.d)
        _set(self, "gain", exact_vector(self.gain, "gain", self.d))
        _set(self, "bias", exact_vector(self.bias, "bias", self.d))
        _set(self, "eps", exact(self.eps, "eps"))
        non_negative(self.eps, "eps")


@dataclass(frozen=True, repr=False)
class RMSNormImage(Spec):
    """The image of RMSNorm on Gaussian pre-activations."""

    free_dimension: ClassVar[bool] = True

    d: int
    gain: tuple[Fraction, ...] | None = None
    eps: Fraction = Fraction(0)

    def __post_init__(self):
        dimension(self.d)
        _set(self, "gain", exact_vector(self.gain, "gain", self.d))
        _set(self, "eps", exact(self.eps, "eps"))
        non_negative(self.eps, "eps")


@dataclass(frozen=True, repr=False)
class Sphere(Spec):
    """The sphere ``|x| = radius``, uniform."""

    free_dimension: ClassVar[bool] = True

    d: int
    radius: Fraction = Fraction(1)

    def __post_init__(self):
        dimension(self.d)
        _set(self, "radius", exact(self.radius, "radius"))
        positive(self.radius, "radius")


@dataclass(frozen=True, repr=False)
class Simplex(Spec):
    """Softmax outputs: the open simplex ``x_i > 0, sum x = 1``."""

    free_dimension: ClassVar[bool] = True

    d: int

    def __post_init__(self):
        dimension(self.d)


@dataclass(frozen=True, repr=False)
class Ellipsoid(Spec):
    """The surface ``sum (x_i / axes_i)**2 = 1``."""

    free_dimension: ClassVar[bool] = True

    d: int
    axes: tuple[Fraction, ...] = field(default=())

    def __post_init__(self):
        dimension(self.d)
        axes = exact_vector(self.axes or (1,) * self.d, "axes", self.d)
        for i, a in enumerate(axes):
            positive(a, f"axes[{i}]")
        _set(self, "axes", axes)


@dataclass(frozen=True, repr=False)
class Hyperplane(Spec):
    """The affine hyperplane ``normal . x = offset``."""

    normal: tuple[Fraction, ...]
    offset: Fraction = Fraction(0)

    def __post_init__(self):
        normal = exact_vector(self.normal, "normal")
        if not normal:
            raise SpecError("normal must have at least one entry")
        dimension(len(normal), "len(normal)")
        if all(v == 0 for v in normal):
            raise SpecError("normal must not be the zero vector")
        _set(self, "normal", normal)
        _set(self, "offset", exact(self.offset, "offset"))

    @property
    def d(self) -> int:
        return len(self.normal)


@dataclass(frozen=True, repr=False)
class ImplicitHypersurface(Spec):
    """The real zero set of a polynomial ``F`` in the named ``variables`` (one per axis)."""

    F: Any
    variables: tuple[str, ...]
    scale: Fraction = Fraction(1)

    def __post_init__(self):
        names = _names(self.variables, "variables")
        _set(self, "variables", names)
        expr = _expression(self.F, names, "F")
        if not is_polynomial(expr):
            raise SpecError(
                "F must be a polynomial in the variables (only + - * and non-negative integer "
                "powers; no functions, no division by a variable)"
            )
        _set(self, "F", expr)
        _set(self, "scale", exact(self.scale, "scale"))
        positive(self.scale, "scale")
        dimension(len(names), "number of variables")

    @property
    def d(self) -> int:
        return len(self.variables)


@dataclass(frozen=True, repr=False)
class ParametricManifold(Spec):
    """The image of ``t -> phi(t)``, one expression per ambient axis, ``t`` uniform on a box."""

    phi: tuple[Any, ...]
    parameters: tuple[str, ...]
    ranges: tuple[tuple[Fraction, Fraction], ...] = ()

    def __post_init__(self):
        names = _names(self.parameters, "parameters")
        _set(self, "parameters", names)
        if isinstance(self.phi, str) or not self.phi:
            raise SpecError("phi must be a non-empty sequence of expressions, one per axis")
        phi = tuple(_expression(p, names, f"phi[{i}]") for i, p in enumerate(self.phi))
        dimension(len(phi), "len(phi)")
        _set(self, "phi", phi)
        _set(self, "ranges", self._validated_ranges(names))

    def _validated_ranges(self, names):
        ranges = self.ranges or ((-1, 1),) * len(names)
        if len(ranges) != len(names):
            raise SpecError(f"ranges has {len(ranges)} entries for {len(names)} parameters")
        out = []
        for name, pair in zip(names, ranges):
            lo, hi = (exact(v, f"range of {name}") for v in pair)
            if not lo < hi:
                raise SpecError(f"range of {name} must have low < high, got ({lo}, {hi})")
            out.append((lo, hi))
        return tuple(out)

    @property
    def d(self) -> int:
        return len(self.phi)


@dataclass(frozen=True, repr=False)
class BumpedHyperplane(Spec):
    """The hyperplane ``x_d = 0`` with a curved strip: ``x_d = kappa/2 * x_1**2`` where
    ``|x_1| < c`` (``c`` chosen so that the strip carries ``fraction`` of the data mass)."""

    free_dimension: ClassVar[bool] = True

    d: int
    kappa: Fraction = Fraction(0)
    fraction: Fraction = Fraction(1)

    def __post_init__(self):
        dimension(self.d, minimum=2)
        _set(self, "kappa", exact(self.kappa, "kappa"))
        _set(self, "fraction", exact(self.fraction, "fraction"))
        between(self.fraction, "fraction", 0, 1)

    @property
    def half_width(self) -> float:
        """``c`` with ``P(|u_1| < c) = fraction`` for ``u_1 ~ N(0, 1)`` (``inf`` at fraction 1)."""
        if self.fraction == 1:
            return math.inf
        if self.fraction == 0:
            return 0.0
        return NormalDist().inv_cdf((1 + float(self.fraction)) / 2)

    @property
    def flat(self) -> bool:
        return self.kappa == 0 or self.fraction == 0


ManifoldSpec = (
    Gaussian
    | LayerNormImage
    | RMSNormImage
    | Sphere
    | Simplex
    | Ellipsoid
    | Hyperplane
    | ImplicitHypersurface
    | ParametricManifold
    | BumpedHyperplane
)

# The one registry of manifold names: the CLI, hypothesis files and experiments all build specs
# through it. Each spec's keywords are its dataclass fields. A new family is one file that
# defines its spec and registers its behaviour with each layer, plus one line here or a call of
# register_family.
FAMILIES: dict[str, type] = {
    "gaussian": Gaussian,
    "layernorm": LayerNormImage,
    "rmsnorm": RMSNormImage,
    "sphere": Sphere,
    "simplex": Simplex,
    "ellipsoid": Ellipsoid,
    "hyperplane": Hyperplane,
    "bumped-hyperplane": BumpedHyperplane,
    "implicit": ImplicitHypersurface,
    "parametric": ParametricManifold,
}
EXPRESSION_FAMILIES = ("implicit", "parametric")  # specs given by user expressions


FAMILY_NAME = re.compile(r"[a-z][a-z0-9-]*")


def register_family(name: str, spec: type) -> type:
    """Add a manifold family to the registry (the CLI, hypothesis files and experiments then
    build it by ``name``). ``spec`` is a frozen dataclass derived from :class:`Spec` with an
    integer field ``d`` (set ``free_dimension`` where the family exists in every d); its data
    and theory are
    registered with the layers it needs, in the same file:
    ``llcgeo.numerics.measurements.manifold_data.register_sampler`` (its data),
    ``llcgeo.theory.support.register_support`` (its exact affine hull), and where they exist
    ``llcgeo.theory.moments.second_moment.register`` and
    ``llcgeo.theory.hypersurface.local_equation.register``."""
    if not isinstance(name, str) or not FAMILY_NAME.fullmatch(name):
        raise SpecError(f"a family name is lower-case letters, digits and '-', got {name!r}")
    if FAMILIES.get(name, spec) is not spec:
        raise SpecError(f"the family name {name!r} is taken by {FAMILIES[name].__name__}")
    params = getattr(spec, "__dataclass_params__", None)
    if not (isinstance(spec, type) and issubclass(spec, Spec) and params and params.frozen):
        raise SpecError(f"{spec!r} is not a frozen dataclass derived from llcgeo.manifolds.Spec")
    if "d" not in {f.name for f in fields(spec)}:
        raise SpecError(f"{spec.__name__} has no field d (the ambient dimension)")
    FAMILIES[name] = spec
    return spec


def is_manifold(value: Any) -> bool:
    """Whether ``value`` is a spec of a registered family."""
    return isinstance(value, tuple(FAMILIES.values()))


def family_keys(name: str) -> tuple[str, ...]:
    """The keywords of a named family, in order (``"layernorm"`` -> ``("d", "gain", ...)``)."""
    return tuple(f.name for f in fields(_family(name)))


def required_keys(name: str) -> tuple[str, ...]:
    """The keywords a named family cannot do without."""
    return tuple(
        f.name
        for f in fields(_family(name))
        if f.default is MISSING and f.default_factory is MISSING
    )


def build(name: str, **values: Any) -> ManifoldSpec:
    """The spec of a named family from its keywords.

    >>> build("sphere", d=3, radius=2)
    Sphere(d=3, radius=2)
    """
    cls = _family(name)
    unknown = sorted(set(values) - set(family_keys(name)))
    if unknown:
        raise SpecError(f"{name} takes {', '.join(family_keys(name))}; not {', '.join(unknown)}")
    missing = [k for k in required_keys(name) if k not in values]
    if missing:
        raise SpecError(f"{name} needs {', '.join(missing)}")
    return cls(**values)


def _family(name: str) -> type:
    if name not in FAMILIES:
        raise SpecError(f"unknown manifold {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


@dataclass(frozen=True, repr=False)
class LinearLayer(Spec):
    """``y = W x (+ b)`` with ``W`` of shape ``m x d``, under the Gaussian loss."""

    m: int
    bias: bool = False

    def __post_init__(self):
        dimension(self.m, "m")
        _check_bias(self.bias)

    @property
    def multiplicity(self) -> int:
        """How many copies of the input block's rank the Hessian holds: ``m``."""
        return self.m


@dataclass(frozen=True, repr=False)
class SoftmaxHead(Spec):
    """``p(y | z) = softmax(W z (+ b))`` over ``classes`` classes, ``W`` of shape
    ``classes x d``, under the cross-entropy loss (:mod:`llcgeo.theory.softmax`)."""

    classes: int
    bias: bool = False

    def __post_init__(self):
        dimension(self.classes, "classes", minimum=2)
        _check_bias(self.bias)

    @property
    def multiplicity(self) -> int:
        """``classes - 1``: adding one vector to every row of ``W`` changes no probability."""
        return self.classes - 1


def _check_bias(bias: Any) -> None:
    if not isinstance(bias, bool):
        raise SpecError(f"bias must be True or False, got {bias!r}")


Head = LinearLayer | SoftmaxHead
HEAD_TYPES = (LinearLayer, SoftmaxHead)


def check_samples(n: Any, what: str = "n") -> int:
    """A validated number of samples: an integer of at least 2 (a fit and a spread need two)
    and at most ``MAX_SAMPLES``."""
    return integer(n, f"{what} (the number of samples)", 2, MAX_SAMPLES)


REFINES = ("all", "weight", "bias")


def check_refine(refine: str, layer: Head) -> str:
    """Validate a weight-refinement name against a layer or head."""
    if not isinstance(layer, HEAD_TYPES):
        raise SpecError(f"a layer must be a LinearLayer or a SoftmaxHead, got {layer!r}")
    if refine not in REFINES:
        raise SpecError(f"refine must be one of {REFINES}, got {refine!r}")
    if refine == "bias" and not layer.bias:
        raise SpecError(f"refine='bias' needs a layer with a bias, got {layer!r}")
    return refine
