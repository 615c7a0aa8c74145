"""Hypothesis files: a manifold, a layer and claims about its LLC, checked without writing Python.

A hypothesis file is TOML. Every expression in it goes through :mod:`llcgeo.parse` (nothing is
evaluated as code), every key is checked (an unknown key is an error that lists the known ones)
and every error names the file and the key. Schema::

    title = "A cone"                      # optional; default: the file name
    description = "..."                   # optional

    [manifold]                            # exactly one of: equation, parametrization, family
    equation = "x1**2 + x2**2 - x3**2"    # a polynomial F (or "lhs = rhs"); the set is F = 0
    variables = ["x1", "x2", "x3"]        # one per ambient axis
    scale = 1                             # data: N(0, scale^2 I) projected onto F = 0
    sampling = "projection"               # optional; the only sampling of an equation

    # or: parametrization = ["cos(u)", "sin(u)", "v"]  (polynomials, sin, cos, exp, sqrt)
    #     parameters = ["u", "v"]
    #     ranges = { u = [-3, 3], v = ["-1/2", "1/2"] }  (default [-1, 1] each)
    #     sampling = "uniform"            # optional; t uniform on the box of ranges
    # or: family = "layernorm" with its own keys (see family_keys): d, gain, beta, eps, ...

    [manifold.constants]                  # optional named numbers the expressions may use
    a = "1/2"                             # int, float or exact text; substituted exactly

    [layer]
    m = 2                                 # output dimension
    bias = false                          # y = W x (+ b)
    refine = "all"                        # all | weight | bias

    [sampler]                             # all optional (SGLDConfig and Case defaults)
    n = 2000                              # samples; also eps, gamma, nbeta, chains, steps,
    seed = 0                              # burnin, sigma (the teacher's output noise)

    [claims]                              # at least one; numbers are expressions in m and d
    llc = "m*(d-1)/2"                     # also llc_drop, llc_unconstrained, hessian_rank
    flat = true                           # the support lies in an affine hyperplane

Each claim is evaluated exactly at the file's ``m`` and ``d`` and compared with the exact
derivation of :func:`llcgeo.theory.predicted_llc`; a claim *agrees* only when it equals that
prediction and the SGLD measurement agrees with the prediction too.

>>> h = parse_hypothesis('''
... [manifold]
... family = "layernorm"
... d = 4
... [layer]
... m = 2
... [claims]
... llc = "m*(d-1)/2"
... flat = true
... ''', name="ln")
>>> h.manifold, h.claims[0].value
(LayerNormImage(d=4), Fraction(3, 1))
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from llcgeo import manifolds as mf
from llcgeo.config import SGLDConfig
from llcgeo.errors import LLCGeoError, SpecError
from llcgeo.expr import Binary, Expr, Num, fold, is_polynomial, substitute
from llcgeo.limits import MAX_FILE_BYTES, check_number
from llcgeo.parse import BOM, parse_expression, parse_number
from llcgeo.reconcile.model import Case
from llcgeo.validate import integer, non_negative

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# the rule llcgeo.report applies to experiment names (they name files): checked here up front
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TOP_KEYS = ("title", "description", "manifold", "layer", "sampler", "claims")
LAYER_KEYS = ("m", "bias", "refine")
SAMPLER_KEYS = ("n", "eps", "gamma", "nbeta", "chains", "steps", "burnin", "seed", "sigma")
NUMBER_CLAIMS = ("llc", "llc_drop", "llc_unconstrained", "hessian_rank")
CLAIM_KEYS = (*NUMBER_CLAIMS, "flat")
IMPLICIT_KEYS = ("equation", "variables", "scale", "sampling", "constants")
PARAMETRIC_KEYS = ("parametrization", "parameters", "ranges", "sampling", "constants")
_FILE_KEY = {"bias": "beta"}  # a spec keyword -> its key in a file, where the two differ
VECTOR_KEYS = ("gain", "beta", "axes", "normal")


def family_keys() -> dict[str, tuple[str, ...]]:
    """Each named family's keys in a file (read from the registry when asked, so a family
    registered after import is known too)."""
    return {
        name: tuple(_FILE_KEY.get(k, k) for k in mf.family_keys(name))
        for name in mf.FAMILIES
        if name not in mf.EXPRESSION_FAMILIES
    }


CLAIM_NAMES = ("m", "d")


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of a file: its key, the text as written, its exact value at the file's m, d."""

    key: str
    text: str
    value: Fraction | bool

    def __post_init__(self):
        if self.key not in CLAIM_KEYS:
            raise SpecError(f"unknown claim {self.key!r}; known claims: {', '.join(CLAIM_KEYS)}")


@dataclass(frozen=True)
class Hypothesis:
    """A checked hypothesis file: what to measure (:meth:`cases`) and what was claimed."""

    name: str
    title: str
    description: str
    source: str
    manifold: mf.ManifoldSpec
    layer: mf.LinearLayer
    refine: str
    n: int
    config: SGLDConfig
    seed: int
    sigma: float
    claims: tuple[ClaimSpec, ...]
    prediction: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.claims:
            raise SpecError(f"{self.source}: claims: give at least one of {', '.join(CLAIM_KEYS)}")

    def claim(self, key: str) -> ClaimSpec | None:
        return next((c for c in self.claims if c.key == key), None)

    @property
    def sees_hull(self) -> bool:
        """Whether the file's layer sees the affine hull (and so flatness): ``W`` and ``b``."""
        return self.layer.bias and self.refine == "all"

    @property
    def flat_layer(self) -> mf.LinearLayer:
        """The layer a ``flat`` claim is measured with: the file's, or the same with a bias."""
        return self.layer if self.sees_hull else mf.LinearLayer(self.layer.m, bias=True)

    def cases(self) -> tuple[Case, ...]:
        """The manifold's case; the same layer on Gaussian data when a claim needs it; and for a
        ``flat`` claim the layer with a bias, when the file's layer cannot see the hull."""
        cases = [self._case(self.manifold, "manifold")]
        if self.claim("llc_drop") or self.claim("llc_unconstrained"):
            cases.append(self._case(mf.Gaussian(self.manifold.d), "gaussian"))
        if self.claim("flat") and not self.sees_hull:
            cases.append(self._case(self.manifold, "flat", self.flat_layer, "all"))
        return tuple(cases)

    def _case(self, manifold, role: str, layer=None, refine=None) -> Case:
        tags = (("hypothesis", self.name), ("role", role))
        return Case(manifold, layer or self.layer, refine or self.refine, self.n, self.config,
                    self.seed, self.sigma, tags)  # fmt: skip


class _File:
    """Where errors point: every message starts with ``file: key:``."""

    def __init__(self, source: str):
        self.source = source

    def at(self, key: str) -> str:
        return f"{self.source}: {key}"

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.at(key)}: {message}")

    def table(self, data: Any, key: str, known: Sequence[str], required=()) -> Mapping:
        if not isinstance(data, Mapping):
            raise self.error(key, f"must be a table, got {_kind(data)}")
        unknown = [k for k in data if k not in known]
        if unknown:
            raise self.error(
                key, f"unknown key {unknown[0]!r}; known keys here: {', '.join(known)}"
            )
        missing = [k for k in required if k not in data]
        if missing:
            raise self.error(key, f"missing key {missing[0]!r}")
        return data

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"must be text, got {_kind(value)}")
        return value

    def number(self, value: Any, key: str) -> Fraction:
        return parse_number(value, what=self.at(key))

    def integer(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {_kind(value)}")
        return int(check_number(value, self.at(key)))

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, 'must be a list of names, e.g. ["x1", "x2"]')
        return value

    def numbers(self, value: Any, key: str) -> tuple[Fraction, ...]:
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of numbers, got {_kind(value)}")
        return tuple(self.number(v, f"{key}[{i}]") for i, v in enumerate(value))


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", str: "text", int: "an integer", float: "a number"}
    kinds |= {list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def load_hypothesis(path: str | Path, *, time_limit: float | None = None) -> Hypothesis:
    """Read and check a hypothesis file; the experiment's name is the file's stem."""
    path = Path(path)
    text = read_text_file(path, MAX_FILE_BYTES)
    return parse_hypothesis(text, name=path.stem, source=str(path), time_limit=time_limit)


def read_text_file(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (a byte-order mark is dropped);
    a FIFO, device or folder is refused before it is opened, so nothing blocks."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise SpecError(f"{path}: not a regular file (a folder, FIFO or device)")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        raise SpecError(f"{path}: cannot be read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise SpecError(f"{path}: the file is larger than {max_bytes >> 20} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def parse_hypothesis(
    text: str, *, name: str, source: str = "<text>", time_limit: float | None = None
) -> Hypothesis:
    """Check the TOML ``text`` of a hypothesis and derive its exact prediction (within
    ``time_limit`` seconds; ``None``: the default of :mod:`llcgeo.limits`)."""
    where = _File(source)
    data = _toml(text.removeprefix(BOM), where)
    where.table(data, "top level", TOP_KEYS, required=("manifold", "layer", "claims"))
    manifold = _wrapped(where, "manifold", lambda: _manifold(data["manifold"], where))
    layer, refine = _layer(data["layer"], where)
    n, config, seed, sigma = _sampler(data.get("sampler", {}), where)
    claims = _claims(data["claims"], where, m=layer.m, d=manifold.d)
    prediction = _wrapped(
        where, _derived_key(manifold), lambda: _predict(manifold, layer, refine, time_limit)
    )
    return Hypothesis(
        name=_name(name, where),
        title=where.text(data.get("title", name), "title"),
        description=where.text(data.get("description", ""), "description"),
        source=source,
        manifold=manifold,
        layer=layer,
        refine=refine,
        n=n,
        config=config,
        seed=seed,
        sigma=sigma,
        claims=claims,
        prediction=prediction,
    )


def _toml(text: str, where: _File) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{where.source}: not valid TOML ({err})") from None
    except RecursionError:
        raise SpecError(f"{where.source}: the TOML is nested too deeply to read") from None
    except ValueError as err:  # e.g. Python's own limit on the digits of an integer
        raise SpecError(f"{where.source}: not valid TOML ({err})") from None


def _name(name: str, where: _File) -> str:
    if not SAFE_NAME.fullmatch(name):
        raise SpecError(
            f"{where.source}: the file name {name!r} must start with a letter or digit and hold "
            "only letters, digits, '_', '.' and '-' (it names the report section and its files)"
        )
    return name


def _wrapped(where: _File, key: str, build):
    """Errors the specs and the derivation raise, prefixed with the file and key."""
    try:
        return build()
    except LLCGeoError as err:
        message = str(err)
        if message.startswith(where.source):
            raise
        raise type(err)(f"{where.at(key)}: {message}") from None


def _derived_key(manifold) -> str:
    """The key a derivation error points at: the expression the set was given by."""
    if isinstance(manifold, mf.ImplicitHypersurface):
        return "manifold.equation"
    if isinstance(manifold, mf.ParametricManifold):
        return "manifold.parametrization"
    return "manifold"


def _predict(manifold, layer, refine, time_limit):
    from llcgeo.theory import predicted_llc

    return predicted_llc(manifold, layer, refine, time_limit=time_limit)


# --- [manifold] --------------------------------------------------------------------------------


def _manifold(table: Any, where: _File) -> mf.ManifoldSpec:
    named = (k for keys in family_keys().values() for k in keys)
    all_keys = (*IMPLICIT_KEYS, *PARAMETRIC_KEYS, "family", *named)
    where.table(table, "manifold", tuple(dict.fromkeys(all_keys)))
    kinds = [k for k in ("equation", "parametrization", "family") if k in table]
    if len(kinds) != 1:
        raise where.error(
            "manifold", "give exactly one of 'equation', 'parametrization' or 'family'"
        )
    if kinds[0] == "family":
        return _family(table, where)
    if kinds[0] == "equation":
        return _implicit(where.table(table, "manifold", IMPLICIT_KEYS, ("variables",)), where)
    return _parametric(where.table(table, "manifold", PARAMETRIC_KEYS, ("parameters",)), where)


def _sampling(table: Mapping, where: _File, only: str) -> None:
    if table.get("sampling", only) != only:
        raise where.error("manifold.sampling", f"this kind of manifold is sampled by {only!r} only")


def _constants(table: Mapping, where: _File, taken: Sequence[str]) -> dict[str, Fraction]:
    values = table.get("constants", {})
    if not isinstance(values, Mapping):
        raise where.error("manifold.constants", f"must be a table, got {_kind(values)}")
    out = {}
    for name, value in values.items():
        key = f"manifold.constants.{name}"
        if not name.isidentifier() or name.startswith("_") or name in taken:
            raise where.error(key, "must be a new identifier (not a variable or parameter)")
        out[name] = where.number(value, key)
    return out


def _expression(text: Any, key: str, where: _File, names, constants) -> Expr:
    tree = parse_expression(where.text(text, key), (*names, *constants), what=where.at(key))
    return substitute(tree, {k: Num(v) for k, v in constants.items()})


def _implicit(table: Mapping, where: _File) -> mf.ImplicitHypersurface:
    _sampling(table, where, "projection")
    variables = where.names(table["variables"], "manifold.variables")
    constants = _constants(table, where, variables)
    text = where.text(table["equation"], "manifold.equation")
    sides = text.split("=") if text.count("=") == 1 else [text]
    parts = [_expression(s, "manifold.equation", where, variables, constants) for s in sides]
    equation = parts[0] if len(parts) == 1 else Binary("-", parts[0], parts[1])
    if not is_polynomial(equation):
        raise where.error(
            "manifold.equation",
            "must be a polynomial in the variables (+ - * and non-negative integer powers; no "
            "functions, no pi, no division by a variable); use a parametrization otherwise",
        )
    scale = where.number(table.get("scale", 1), "manifold.scale")
    if scale <= 0:
        raise where.error("manifold.scale", f"must be positive, got {scale}")
    return mf.ImplicitHypersurface(equation, tuple(variables), scale)


def _parametric(table: Mapping, where: _File) -> mf.ParametricManifold:
    _sampling(table, where, "uniform")
    parameters = where.names(table["parameters"], "manifold.parameters")
    constants = _constants(table, where, parameters)
    coordinates = table["parametrization"]
    if not isinstance(coordinates, list) or not coordinates:
        raise where.error("manifold.parametrization", "must be a list of expressions, one per axis")
    phi = tuple(
        _expression(c, f"manifold.parametrization[{i}]", where, parameters, constants)
        for i, c in enumerate(coordinates)
    )
    return mf.ParametricManifold(phi, tuple(parameters), _ranges(table, where, parameters))


def _ranges(table: Mapping, where: _File, parameters) -> tuple:
    given = table.get("ranges", {})
    if not isinstance(given, Mapping):
        raise where.error("manifold.ranges", "must be a table such as { u = [-1, 1] }")
    where.table(given, "manifold.ranges", parameters)
    out = []
    for name in parameters:
        pair = given.get(name, [-1, 1])
        key = f"manifold.ranges.{name}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise where.error(key, "must be a pair [low, high]")
        low, high = where.numbers(pair, key)
        if not low < high:
            raise where.error(key, f"must have low < high, got [{low}, {high}]")
        out.append((low, high))
    return tuple(out)


def _family(table: Mapping, where: _File) -> mf.ManifoldSpec:
    family, known = where.text(table["family"], "manifold.family"), family_keys()
    if family not in known:
        raise where.error(
            "manifold.family", f"unknown family {family!r}; known: {', '.join(known)}"
        )
    table = where.table(table, "manifold", ("family", *known[family]))
    args = {k: _family_value(k, v, where) for k, v in table.items() if k != "family"}
    for key in VECTOR_KEYS:
        if key in args and "d" in args and len(args[key]) != args["d"]:
            raise where.error(
                f"manifold.{key}", f"has {len(args[key])} entries, but d = {args['d']}"
            )
    if "beta" in args:
        args["bias"] = args.pop("beta")
    return mf.build(family, **args)


def _family_value(key: str, value: Any, where: _File):
    if key == "d":
        return where.integer(value, "manifold.d")
    if key in VECTOR_KEYS:
        return where.numbers(value, f"manifold.{key}")
    return where.number(value, f"manifold.{key}")


# --- [layer], [sampler], [claims] --------------------------------------------------------------


def _layer(table: Any, where: _File) -> tuple[mf.LinearLayer, str]:
    where.table(table, "layer", LAYER_KEYS, required=("m",))
    bias = table.get("bias", False)
    if not isinstance(bias, bool):
        raise where.error("layer.bias", f"must be true or false, got {_kind(bias)}")
    layer = _wrapped(
        where, "layer", lambda: mf.LinearLayer(where.integer(table["m"], "layer.m"), bias)
    )
    refine = where.text(table.get("refine", "all"), "layer.refine")
    return layer, _wrapped(where, "layer.refine", lambda: mf.check_refine(refine, layer))


def _sampler(table: Any, where: _File) -> tuple[int, SGLDConfig, int, float]:
    where.table(table, "sampler", SAMPLER_KEYS)
    n = _wrapped(where, "sampler.n", lambda: mf.check_samples(table.get("n", 20_000)))
    seed = _wrapped(where, "sampler.seed", lambda: integer(table.get("seed", 0), "seed", 0))
    sigma = where.number(table.get("sigma", 0.5), "sampler.sigma")
    _wrapped(where, "sampler.sigma", lambda: non_negative(sigma, "sigma"))
    settings = {k: v for k, v in table.items() if k not in ("n", "seed", "sigma")}
    config = _wrapped(where, "sampler", lambda: SGLDConfig(**settings))
    return n, config, seed, float(sigma)


def _claims(table: Any, where: _File, *, m: int, d: int) -> tuple[ClaimSpec, ...]:
    where.table(table, "claims", CLAIM_KEYS)
    claims = []
    for key, value in table.items():
        if key == "flat":
            if not isinstance(value, bool):
                raise where.error("claims.flat", f"must be true or false, got {_kind(value)}")
            claims.append(ClaimSpec(key, str(value).lower(), value))
        else:
            claims.append(_number_claim(key, value, where, m, d))
    return tuple(claims)


def _number_claim(key: str, value: Any, where: _File, m: int, d: int) -> ClaimSpec:
    at = where.at(f"claims.{key}")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(f"{at}: must be an expression in m and d, got {_kind(value)}")
    text = value if isinstance(value, str) else str(parse_number(value, at))
    tree = parse_expression(text, CLAIM_NAMES, what=at, allow_calls=False)
    return ClaimSpec(key, text, evaluate_claim(tree, m=m, d=d, what=at))


def evaluate_claim(tree: Expr, *, m: int, d: int, what: str = "claim") -> Fraction:
    """The exact rational value of a claim at ``m`` and ``d``.

    >>> evaluate_claim(parse_expression("m*(d-1)/2", CLAIM_NAMES), m=3, d=4)
    Fraction(9, 2)
    """
    env = {"m": Fraction(m), "d": Fraction(d)}
    try:
        value = fold(tree, env, {})
    except ZeroDivisionError:
        raise SpecError(f"{what}: divides by zero at m = {m}, d = {d}") from None
    if not isinstance(value, Fraction):
        raise SpecError(f"{what}: is not rational at m = {m}, d = {d}")
    return check_number(value, f"{what} at m = {m}, d = {d}")


def load_hypotheses(
    paths: Sequence[str | Path], *, time_limit: float | None = None
) -> tuple[Hypothesis, ...]:
    """Load every file, reporting the errors of all of them at once (nothing runs before)."""
    loaded, errors = [], []
    for path in paths:
        try:
            loaded.append(load_hypothesis(path, time_limit=time_limit))
        except LLCGeoError as err:
            errors.append(str(err))
    names = [h.name for h in loaded]
    for name in sorted({n for n in names if names.count(n) > 1}):
        sources = ", ".join(h.source for h in loaded if h.name == name)
        errors.append(f"{sources}: files with the same name {name!r} would share a report section")
    if errors:
        count = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
        raise SpecError(f"{count} in the hypothesis files:\n  " + "\n  ".join(errors))
    return tuple(loaded)
