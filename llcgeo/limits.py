"""The limits that keep every input's work bounded, each stated once (standard library only).

Every entry point (CLI flags, hypothesis files, Python specs) checks its input against these
*before* the work starts, so a mistyped exponent or a hostile file gets a clear error naming the
limit and the value within seconds, never minutes of sympy or gigabytes of torch.

=========================  =========  ==========================================================
limit                      value      why
=========================  =========  ==========================================================
digits of any number       100        more than any physical constant needs; big integers make
                                      factoring and exact arithmetic slow without bound
variables of an equation   64         sympy's factoring recurses per variable; a flat set in
                                      higher d is a ``hyperplane`` family, which has no limit
total degree               64         the parser's exponent cap, applied to the expanded whole
terms after expansion      20 000     a degree-4 polynomial in 12 variables has at most 1 820
coefficient size           4 096 bits the largest coefficient after expansion, bounded
samples of a data set      2^26       67 million rows; memory and time are planned besides
dimension of a manifold    65 536     a width beyond any layer the toolkit measures
depth of a network         10 000     the isometry and Lipschitz suites' deepest networks
a hypothesis file          4 MiB      a TOML file of that size is not a hypothesis
a stored record            64 MiB     the largest record (a Lipschitz case) is about 1 MB
a model or data file       2 GiB      read whole into memory and checked there before torch or
                                      numpy reads it; also bounds the members it unpacks to
a reader's whole Hessian    16 384     directions of its quotient computed whole (float64, by
                                      Hessian-vector products; memory and time planned against
                                      the run's budget); past it, or past the budget, a block
                                      of it; raised with ``llcgeo scan --hessian-directions``
derivation time            60 s       raised with ``--time-limit SECONDS``, the ``budget=``
                                      keyword (a :class:`Budget`) or the environment variable
                                      ``LLCGEO_TIME_LIMIT``; named families take ms; a
                                      forked child does the work and is killed at the deadline
time of a sampling run      10 min     planned before the first step from the measured cost of
                                      a few steps; raised with the same ``--time-limit``, or
                                      ``budget=`` (its own field) or ``LLCGEO_TIME_LIMIT``
memory of a run            2 GB       (or half the RAM, if less) planned before the first
                                      step; raised with ``--max-memory GB``, ``budget=`` or
                                      the environment variable ``LLCGEO_MAX_MEMORY_GB``
=========================  =========  ==========================================================

The last three make up a :class:`Budget`. The environment is read in one place,
:meth:`Budget.from_environment`: the budget in force when no entry point's ``budget=`` and no
command's flags set one (:func:`current_budget`).

>>> from llcgeo.parse import parse_expression
>>> expression_size(parse_expression("(x + y + 1)**3", ["x", "y"]))
Size(degree=3, terms=10, bits=15)
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import inspect
import math
import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from llcgeo.errors import DerivationError, SpecError
from llcgeo.expr import Call, Const, Expr, Neg, Num, Var, variables

MAX_DIGITS = 100
MAX_SAMPLES = 1 << 26
MAX_DIMENSION = 1 << 16
MAX_DEPTH = 10_000
MAX_FILE_BYTES = 4 << 20
MAX_RECORD_BYTES = 64 << 20
MAX_MODEL_FILE_BYTES = 2 << 30
MAX_HESSIAN_DIRECTIONS = 16_384
MAX_VARIABLES = 64
MAX_DEGREE = 64
MAX_TERMS = 20_000
MAX_COEFFICIENT_BITS = 4096
DERIVATION_SECONDS = 60.0
MEMORY_ENV = "LLCGEO_MAX_MEMORY_GB"
TIME_ENV = "LLCGEO_TIME_LIMIT"
MEMORY_FRACTION = 0.5
MEMORY_GB = 2.0
RUN_SECONDS = 600.0
_DIGITS_PER_BIT = math.log10(2)
_SATURATED = 10**15  # sizes are clamped here, so that bounding a huge input stays cheap


def digits(value: int) -> int:
    """Decimal digits of ``|value|``, from its bit length (no string conversion, which Python
    refuses beyond 4 300 digits); exact up to a few times ``MAX_DIGITS``, a lower bound beyond.

    >>> digits(10**100 - 1), digits(10**100), digits(0)
    (100, 101, 1)
    """
    magnitude = abs(value)
    low = int((magnitude.bit_length() - 1) * _DIGITS_PER_BIT) + 1 if magnitude else 1
    if low > 4 * MAX_DIGITS:
        return low
    return low + (magnitude >= 10**low)


def check_number(value: Fraction | int, what: str) -> Fraction:
    """``value`` as a ``Fraction`` whose numerator and denominator have at most ``MAX_DIGITS``
    digits, else ``SpecError``."""
    value = Fraction(value)
    longest = max(digits(value.numerator), digits(value.denominator))
    if longest > MAX_DIGITS:
        raise SpecError(
            f"{what}: a number with about {longest} digits is longer than the limit of "
            f"{MAX_DIGITS} digits"
        )
    return value


@dataclass(frozen=True)
class Size:
    """Upper bounds on an expression after full expansion: total degree, number of terms and
    bits of the largest coefficient (``sin``, ``cos``, ``exp`` and ``sqrt`` of anything count
    as new generators of degree one)."""

    degree: int
    terms: int
    bits: int


def _clamp(value: int) -> int:
    return min(int(value), _SATURATED)


def _sum(a: Size, b: Size) -> Size:
    return Size(max(a.degree, b.degree), _clamp(a.terms + b.terms), max(a.bits, b.bits) + 1)


def _product(a: Size, b: Size) -> Size:
    carry = min(a.terms, b.terms).bit_length()  # a coefficient sums at most that many products
    return Size(
        _clamp(a.degree + b.degree), _clamp(a.terms * b.terms), _clamp(a.bits + b.bits + carry)
    )


def _power(base: Size, k: Fraction) -> Size:
    if k.denominator != 1 or k < 0:  # not expanded: one opaque generator
        return Size(1, 1, base.bits)
    whole = int(k)
    if whole == 0:
        return Size(0, 1, 1)
    terms = math.comb(base.terms + whole - 1, whole) if base.terms < 10**6 else _SATURATED
    bits = base.bits * whole + whole * base.terms.bit_length()  # multinomials <= terms**k
    return Size(_clamp(base.degree * whole), _clamp(terms), _clamp(bits))


def _size(expr: Expr) -> Size:
    if isinstance(expr, Num):
        v = expr.value
        return Size(0, 1, max(v.numerator.bit_length(), v.denominator.bit_length(), 1))
    if isinstance(expr, (Var, Const)):
        return Size(int(isinstance(expr, Var)), 1, 1)
    if isinstance(expr, Neg):
        return _size(expr.operand)
    if isinstance(expr, Call):
        return Size(1, 2 if expr.func in ("sin", "cos") else 1, _size(expr.arg).bits)
    left, right = _size(expr.left), _size(expr.right)
    if expr.op in ("+", "-"):
        return _sum(left, right)
    if expr.op == "**":
        return _power(left, expr.right.value) if isinstance(expr.right, Num) else Size(1, 1, 1)
    if expr.op == "/" and not variables(expr.right):
        return Size(left.degree, left.terms, _clamp(left.bits + right.bits))
    return _product(left, right)


def expression_size(expr: Expr) -> Size:
    """Bounds on ``expr`` after expansion, computed without expanding it."""
    try:
        return _size(expr)
    except RecursionError:
        raise SpecError("the expression is nested too deeply to bound its size") from None


def check_expression(expr: Expr, what: str) -> Expr:
    """``expr``, or ``SpecError`` when its expansion would exceed a limit of this module."""
    size = expression_size(expr)
    for value, limit, name in (
        (size.degree, MAX_DEGREE, "total degree"),
        (size.terms, MAX_TERMS, "number of terms after expansion"),
        (size.bits, MAX_COEFFICIENT_BITS, "coefficient size in bits after expansion"),
    ):
        if value > limit:
            shown = f"{value:.3g} or more" if value >= _SATURATED else str(value)
            raise SpecError(
                f"{what}: the {name} could reach {shown}, more than the limit of {limit}"
            )
    return expr


def check_variables(count: int, what: str) -> int:
    """``count``, or ``SpecError`` when an expression-defined manifold has too many axes."""
    if count > MAX_VARIABLES:
        raise SpecError(
            f"{what}: {count} variables are more than the limit of {MAX_VARIABLES} for a manifold "
            "given by expressions (a flat set in higher dimension is a hyperplane family)"
        )
    return count


# --- memory ------------------------------------------------------------------------------------


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or ``None`` where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_memory() -> int:
    """``MEMORY_GB``, or half of this machine's memory where that is less."""
    total = physical_memory()
    default = int(MEMORY_GB * 2**30)
    return default if total is None else min(default, int(total * MEMORY_FRACTION))


def memory_limit() -> int | None:
    """The most bytes one run may plan to use (``None``: no limit), of :func:`current_budget`."""
    return current_budget().memory


def check_memory(nbytes: float, what: str) -> None:
    """``SpecError`` when ``what`` would need more than :func:`memory_limit` bytes."""
    check_budget(nbytes, None, what)


def check_budget(nbytes: float, seconds: float | None, what: str) -> None:
    """``SpecError`` in one line naming the figures when ``what`` would need more memory than
    :func:`memory_limit` or more time than :func:`run_seconds` (``seconds=None``: not yet
    planned), and the flags that raise them."""
    memory, time_limit = memory_limit(), run_seconds()
    over_memory = memory is not None and nbytes > memory
    if not over_memory and (seconds is None or seconds <= time_limit):
        return
    needs = f"{nbytes / 2**30:.3g} GB" + ("" if seconds is None else f" and {_duration(seconds)}")
    raise SpecError(
        f"{what} would need about {needs}, more than the budget of {_gigabytes(memory)} and "
        f"{_duration(time_limit)}; raise it with --max-memory GB and --time-limit SECONDS "
        f"(budget= in Python, or {MEMORY_ENV} and {TIME_ENV}) if you mean it"
    )


def _gigabytes(nbytes: int | None) -> str:
    return "unlimited memory" if nbytes is None else f"{nbytes / 2**30:.3g} GB"


def _duration(seconds: float) -> str:
    """``41 s``, ``12 min``, ``3.2 h``: a planned duration, to two figures."""
    if math.isinf(seconds):
        return "no time limit"
    if seconds < 90:
        return f"{seconds:.2g} s"
    return f"{seconds / 60:.2g} min" if seconds < 5400 else f"{seconds / 3600:.2g} h"


def sampling_bytes(*, chains: int, steps: int, parameters: int) -> int:
    """Bytes SGLD holds at its peak (float64): the loss trace and its two copies (summary and
    diagnostics), and the chains' state with its gradient, noise and temporaries."""
    return 8 * chains * (3 * steps + 8 * parameters)


def linear_run_bytes(*, n: int, d: int, m: int, bias: bool, chains: int, steps: int) -> int:
    """Bytes a linear-layer measurement holds at its peak (float64): the data and its copies
    (sampling, design matrix, targets, least squares), the Hessian block, and the sampling."""
    p = d + bias
    data = 8 * (8 * n * (p + m) + 2 * p * p)  # measured: n = 10**7 on a cone peaks at 2.5 GB
    return data + sampling_bytes(chains=chains, steps=steps, parameters=m * p)


def check_linear_run(*, n: int, d: int, m: int, bias: bool, chains: int, steps: int) -> None:
    """:func:`check_memory` for a linear-layer measurement of these sizes."""
    sizes = f"n = {n}, d = {d}, m = {m}, {chains} chains x {steps} steps"
    nbytes = linear_run_bytes(n=n, d=d, m=m, bias=bias, chains=chains, steps=steps)
    check_memory(nbytes, f"a measurement with {sizes}")


# --- time --------------------------------------------------------------------------------------


EXPIRY_REPEAT_S = 0.25


class _Expired(BaseException):
    """Raised by the alarm; a ``BaseException`` so that no ``except Exception`` inside a
    library swallows it."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _positive_setting(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{what} must be a number, got {text!r}") from None
    if not value > 0:  # also rejects NaN
        raise SpecError(f"{what} must be positive, got {text!r}")
    return value


def run_seconds() -> float:
    """The time one sampling run may plan to take (``math.inf``: no bound), of
    :func:`current_budget`."""
    return current_budget().run_seconds


def derivation_seconds(seconds: float | None = None) -> float:
    """The time bound of a derivation: ``seconds`` when given, else that of
    :func:`current_budget`; ``math.inf`` means no bound."""
    if seconds is None:
        return current_budget().derivation_seconds
    return _positive_number(seconds, "the time limit", "seconds")


# --- the budget: memory, run time, derivation time -----------------------------------------------


def _positive_number(value, what: str, unit: str) -> float:
    """``value`` as a float when it is a positive number (``math.inf`` included), else
    ``SpecError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(f"{what} must be a positive number of {unit}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """What one run may plan to use: ``memory`` bytes (``None`` or ``math.inf``: no limit),
    ``run_seconds`` for a sampling run, ``derivation_seconds`` for an exact derivation
    (``math.inf``: no bound). Entry points take one as ``budget=``; commands build one from
    their flags (:meth:`of`); otherwise the environment's is in force (:meth:`from_environment`).

    >>> Budget(memory=2**30, run_seconds=60).derivation_seconds
    60.0
    >>> Budget.of(max_memory="inf", time_limit="120")
    Budget(memory=None, run_seconds=120.0, derivation_seconds=120.0)
    """

    memory: int | None = field(default_factory=default_memory)
    run_seconds: float = RUN_SECONDS
    derivation_seconds: float = DERIVATION_SECONDS

    def __post_init__(self) -> None:
        # frozen: the checked, normalized values are set past the dataclass's guard
        if self.memory is not None:
            nbytes = _positive_number(self.memory, "Budget.memory", "bytes (None: no limit)")
            object.__setattr__(self, "memory", None if math.isinf(nbytes) else math.ceil(nbytes))
        for name in ("run_seconds", "derivation_seconds"):
            seconds = _positive_number(getattr(self, name), f"Budget.{name}", "seconds")
            object.__setattr__(self, name, seconds)

    @classmethod
    def of(cls, max_memory=None, time_limit=None, *, base: Budget | None = None) -> Budget:
        """The budget of the command line's flags: ``max_memory`` gigabytes, ``time_limit``
        seconds for each derivation and each run alike (text or numbers; ``"inf"``: no bound).
        A flag not given (``None`` or blank) keeps ``base``'s value (default: the defaults)."""
        return _with_settings(cls() if base is None else base, max_memory, time_limit,
                              ("--max-memory", "--time-limit"))  # fmt: skip

    @classmethod
    def from_environment(cls) -> Budget:
        """The budget ``LLCGEO_MAX_MEMORY_GB`` and ``LLCGEO_TIME_LIMIT`` set, as the flags do,
        on the defaults: the one place the package reads them, called afresh each time."""
        return _with_settings(cls(), os.environ.get(MEMORY_ENV), os.environ.get(TIME_ENV),
                              (MEMORY_ENV, TIME_ENV))  # fmt: skip


def _with_settings(base: Budget, max_memory, time_limit, names: tuple[str, str]) -> Budget:
    """``base`` with the settings given (gigabytes, seconds); ``names`` say where they came
    from, for the error."""
    changes: dict[str, Any] = {}
    if max_memory is not None and str(max_memory).strip():
        gigabytes = _positive_setting(str(max_memory).strip(), names[0])
        changes["memory"] = None if math.isinf(gigabytes) else int(gigabytes * 2**30)
    if time_limit is not None and str(time_limit).strip():
        seconds = _positive_setting(str(time_limit).strip(), names[1])
        changes.update(run_seconds=seconds, derivation_seconds=seconds)
    return dataclasses.replace(base, **changes)


# a context variable, not a global: each thread sees only its own, and a block's budget ends
# with the block even when it raises
_IN_FORCE: ContextVar[Budget | None] = ContextVar("llcgeo_budget", default=None)


def current_budget() -> Budget:
    """The budget in force: the innermost :func:`using`'s, else the environment's."""
    budget = _IN_FORCE.get()
    return Budget.from_environment() if budget is None else budget


@contextmanager
def using(budget: Budget | None) -> Iterator[Budget]:
    """Put ``budget`` in force for the block (``None``: leave the one in force)."""
    if budget is None:
        yield current_budget()
        return
    if not isinstance(budget, Budget):
        raise SpecError(f"budget must be an llcgeo.limits.Budget or None, got {budget!r}")
    token = _IN_FORCE.set(budget)
    try:
        yield budget
    finally:
        _IN_FORCE.reset(token)


def with_budget(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with one more keyword, ``budget`` (a :class:`Budget`, default ``None``:
    the one in force), under which each call runs."""

    @functools.wraps(function)
    def bounded(*args, budget: Budget | None = None, **kwargs):
        with using(budget):
            return function(*args, **kwargs)

    bounded.__signature__ = _signature_with_budget(function)  # type: ignore[attr-defined]
    return bounded


def _signature_with_budget(function: Callable[..., Any]) -> inspect.Signature:
    """``function``'s signature with ``budget=None`` as its last keyword (before ``**``), so
    that help() and editors show it."""
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    budget = inspect.Parameter("budget", inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation="Budget | None")  # fmt: skip
    ends_in_kwargs = bool(parameters) and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD
    at = len(parameters) - 1 if ends_in_kwargs else len(parameters)
    return signature.replace(parameters=[*parameters[:at], budget, *parameters[at:]])


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise ``DerivationError`` when the block runs longer than :func:`derivation_seconds`.

    The bound uses the process's interval timer, so it holds in the main thread of a Unix
    process; elsewhere (a worker thread, Windows) only the size limits bound the work. A limit
    already running outside keeps its own, earlier deadline. Past the deadline the alarm repeats
    every ``EXPIRY_REPEAT_S``: an exception that lands in a finalizer (``__del__``, a weakref
    callback) is only printed by Python, and the next alarm then stops the work all the same.
    """
    seconds = derivation_seconds(seconds)
    if math.isinf(seconds) or not _can_alarm() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return
    armed = [True]

    def expire(signum, frame):
        if armed[0]:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, EXPIRY_REPEAT_S)
    try:
        yield
    except _Expired:
        armed[0] = False
        raise DerivationError(_too_long(what, seconds)) from None
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_bounded(function: Callable[..., Any], *args, seconds: float | None, what: str) -> Any:
    """``function(*args)`` within :func:`derivation_seconds`, else ``DerivationError``.

    The work runs in a forked child that is killed at the deadline: a signal cannot stop one
    long C call, and sympy's heuristic GCD makes big-integer products that run for hours. A
    fork costs milliseconds, imports nothing again and leaves the caller's state untouched
    whatever the child does. Where there is no ``fork`` the interval timer of
    :func:`time_limit` bounds the work instead.
    """
    seconds = derivation_seconds(seconds)
    if math.isinf(seconds) or not hasattr(os, "fork"):
        with time_limit(seconds, what):
            return function(*args)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _answer_and_exit(write_end, function, args)
    os.close(write_end)
    try:
        data = _read_before(read_end, time.monotonic() + seconds, what, seconds)
    finally:
        os.close(read_end)
        _end_child(pid)
    return _unpack(data, what)


def _answer_and_exit(write_end: int, function, args) -> None:
    """In the child: compute, send ``(kind, value)`` pickled, exit without running any of the
    parent's clean-up (atexit handlers, buffered files, the test runner's hooks)."""
    code = 1
    try:
        gc.disable()  # a collection could run finalizers of the parent's objects (torch's)
        try:
            outcome = ("value", function(*args))
        except BaseException as error:  # sent to the parent, which raises it there
            outcome = ("error", error)
        try:
            data = pickle.dumps(outcome)
        except Exception as error:  # an answer or a foreign error that does not pickle
            text = f"{type(outcome[1]).__name__}: {outcome[1]} ({error})"
            data = pickle.dumps(("error", DerivationError(text)))
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        code = 0
    finally:
        os._exit(code)


def _read_before(read_end: int, deadline: float, what: str, seconds: float) -> bytes:
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            raise DerivationError(_too_long(what, seconds))
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _end_child(pid: int) -> None:
    with suppress(ProcessLookupError):  # it has exited already
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _unpack(data: bytes, what: str):
    try:
        kind, value = pickle.loads(data)
    except Exception:  # nothing, or a torn message: the child died before it answered
        raise DerivationError(
            f"{what} ended without an answer (the worker died: out of memory, or killed)"
        ) from None
    if kind == "error":
        raise value
    return value


def _too_long(what: str, seconds: float) -> str:
    return (
        f"{what} took longer than the time limit of {seconds:g} s and was stopped; simplify "
        "the input, or raise the limit (--time-limit SECONDS, or budget= in Python) if you mean it"
    )
