"""The safe parser: hostile text is rejected with ExpressionError, never run, and fast."""

from __future__ import annotations

import ast
import builtins
import contextlib
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llcgeo.errors import ExpressionError
from llcgeo.expr import FUNCTIONS, Binary, Call, Const, Neg, Num, Var, to_text, variables
from llcgeo.parse import parse_expression, parse_number

NAMES = ("x", "y", "t1")
# Catches a hang, not slowness: a rejection takes microseconds, the blow-ups this guards against
# (deep recursion, giant powers) cost minutes to hours, and a busy machine can stall any single
# parse (a collection, a descheduled core) for a second or more.
TIME_BOUND_S = 20.0
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


class Executed(BaseException):
    """Raised by the sentinels; a BaseException so no ``except Exception`` can swallow it."""


def _sentinel(*args, **kwargs):
    raise Executed(f"code was executed: {args!r:.80}")


# Python's own parser imports unicodedata to normalise non-ASCII identifiers (PEP 3131);
# that import is the parser's, not the user's, and the module name is not the user's choice.
PARSER_IMPORTS = frozenset({"unicodedata"})


@contextlib.contextmanager
def nothing_may_execute():
    real_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        if name in PARSER_IMPORTS:
            return real_import(name, *args, **kwargs)
        raise Executed(f"import of {name!r} during parsing")

    sentinels = {"__import__": guarded_import, "eval": _sentinel, "exec": _sentinel}
    sentinels |= {"open": _sentinel, "breakpoint": _sentinel}
    saved = {name: getattr(builtins, name) for name in sentinels}
    try:
        for name, value in sentinels.items():
            setattr(builtins, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(builtins, name, value)


def parse_safely(text, **kwargs):
    """Parse under the sentinels and the time bound; return the tree or the ExpressionError."""
    start = time.perf_counter()
    try:
        with nothing_may_execute():
            result = parse_expression(text, NAMES, **kwargs)
    except ExpressionError as err:
        result = err
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_BOUND_S, f"parsing {text[:60]!r} took {elapsed:.3f} s"
    return result


def rejected(text, fragment, **kwargs):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, NAMES, what="hyp.toml: manifold.equation", **kwargs)
    message = str(info.value)
    assert message.startswith("hyp.toml: manifold.equation: "), message
    assert fragment in message, message
    return message


# --- what is accepted, and exactly -------------------------------------------------------------


def test_numbers_are_exact_rationals_read_from_the_literal_text():
    assert parse_expression("0.1", ()) == Num(Fraction(1, 10))
    assert parse_expression("1e-3", ()) == Num(Fraction(1, 1000))
    assert parse_expression("1_000.5", ()) == Num(Fraction(2001, 2))
    assert parse_expression("0x10", ()) == Num(Fraction(16))
    assert parse_expression("-2/6", ()) == Num(Fraction(-1, 3))
    assert parse_expression("2**-2", ()) == Num(Fraction(1, 4))


def test_the_allowed_grammar_builds_the_expected_tree():
    tree = parse_expression("-x**2 + sin(pi*t1)/3", NAMES)
    expected = Binary(
        "+",
        Neg(Binary("**", Var("x"), Num(Fraction(2)))),
        Binary("/", Call("sin", Binary("*", Const("pi"), Var("t1"))), Num(Fraction(3))),
    )
    assert tree == expected
    assert parse_expression("+x", NAMES) == Var("x")


def test_every_exponent_is_folded_to_one_number():
    assert parse_expression("x**(1+1)", NAMES) == Binary("**", Var("x"), Num(Fraction(2)))
    assert parse_expression("x**(1/2)", NAMES) == Binary("**", Var("x"), Num(Fraction(1, 2)))
    assert parse_expression("x**-1", NAMES) == Binary("**", Var("x"), Num(Fraction(-1)))


def test_a_declared_name_shadows_the_constant_pi():
    assert parse_expression("pi", ("pi",)) == Var("pi")
    assert parse_expression("pi", ()) == Const("pi")


def test_parse_number_accepts_toml_values_and_constant_text():
    assert parse_number(3) == 3
    assert parse_number(0.1) == Fraction(1, 10)
    assert parse_number("1/3") == Fraction(1, 3)
    for bad in (float("inf"), float("nan"), True, "x", "sqrt(2)", "2**(1/2)", None):
        with pytest.raises(ExpressionError):
            parse_number(bad, "constants.a")


# --- hostile input: each rejected with a message naming the problem ---------------------------

HOSTILE = [
    ("x.__class__", "attribute access is not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", "only the functions sin, cos, exp, sqrt"),
    ("__import__('os').system('true')", "only the functions sin, cos, exp, sqrt"),
    ("__import__", "unknown name '__import__'"),
    ("eval('1')", "only the functions"),
    ("(lambda: 1)()", "only the functions"),
    ("lambda: x", "lambda expressions are not allowed"),
    ("x[0]", "subscripts are not allowed"),
    ("'x'", "strings are not allowed"),
    ("b'x'", "bytes are not allowed"),
    ("f'{x}'", "f-strings are not allowed"),
    ("[x for x in (1, 2)]", "comprehensions are not allowed"),
    ("sum(x for x in y)", "only the functions"),
    ("{x: 1 for x in y}", "comprehensions are not allowed"),
    ("x**(10**9)", "the exponent 1000000000 is larger than 64"),
    ("x**65", "the exponent 65 is larger than 64"),
    ("2**2**2**2**2", "the exponent 65536 is larger than 64"),
    ("(x**8)**16", "nested powers raise a term to the power 128"),
    ("x**y", "the exponent of ** must be a rational constant"),
    ("x**pi", "the exponent of ** must be a rational constant"),
    ("x**sqrt(2)", "the exponent of ** must be a rational constant"),
    ("z + 1", "unknown name 'z'"),
    ("x^2", "use ** for powers"),
    ("x//2", "use / for division"),
    ("x % 2", "'%' is not allowed"),
    ("~x", "'~' is not allowed"),
    ("not x", "'not' is not allowed"),
    ("x < 1", "comparisons are not allowed"),
    ("x and y", "'and'/'or' are not allowed"),
    ("x if y else 1", "conditional expressions are not allowed"),
    ("(x := 1)", "assignment expressions are not allowed"),
    ("(x, y)", "tuples are not allowed"),
    ("[x]", "lists are not allowed"),
    ("{x}", "sets are not allowed"),
    ("{x: y}", "dicts are not allowed"),
    ("True", "booleans are not allowed"),
    ("None", "the constant None is not allowed"),
    ("...", "the constant Ellipsis is not allowed"),
    ("1j", "imaginary numbers are not allowed"),
    ("1e400", "decimal exponent is beyond"),
    ("1e-999999999", "decimal exponent is beyond"),
    ("1" * 150, "a number with 150 digits is longer than the limit of 100"),
    ("2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60", "longer than the limit of 100 digits"),
    ("1/0", "division by zero"),
    ("x/(2-2)", "division by zero"),
    ("0**-1", "division by zero"),
    ("(-1)**(1/2)", "not a real number"),
    ("sin", "sin is a function: call it as sin(...)"),
    ("sin(x, y)", "sin takes exactly one argument"),
    ("cos(x=1)", "cos takes exactly one argument"),
    ("sqrt(*x)", "starred arguments are not allowed"),
    ("x.real(1)", "only the functions"),
    ("", "the expression is empty"),
    ("   ", "the expression is empty"),
    ("x +", "not a valid expression"),
    ("import os", "not a valid expression"),
    ("x = 1", "not a valid expression"),
    ("x\ny", "not a valid expression"),
    ("x\0", "not a valid expression"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE)
def test_hostile_text_is_rejected_with_a_message_naming_the_problem(text, fragment):
    rejected(text, fragment)


def test_the_offending_part_is_quoted_with_its_column():
    message = rejected("x + y.__dict__", "attribute access")
    assert "found 'y.__dict__' at column 5" in message


def test_calls_can_be_switched_off():
    rejected("sin(x)", "function calls (sin) are not allowed here", allow_calls=False)


def test_a_one_megabyte_expression_is_rejected_by_its_length_before_reading():
    message = rejected("x+" * 500_000 + "x", "1000001 characters long, more than 10000")
    assert "nested" not in message


DEEP = {
    "parentheses": "(" * 10_000 + "x" + ")" * 10_000,
    "unary minus": "-" * 10_000 + "x",
    "powers": "x" + "**x" * 10_000,
    "a long sum": "x" + "+x" * 10_000,
    "calls": "sin(" * 10_000 + "x" + ")" * 10_000,
    "lists": "[" * 10_000 + "]" * 10_000,
}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_ten_thousand_deep_nesting_is_rejected_even_without_the_length_cap(kind):
    result = parse_safely(DEEP[kind], max_length=10**6)
    assert isinstance(result, ExpressionError)
    assert "nested" in str(result) or "not a valid expression" in str(result)


def test_the_depth_cap_counts_the_levels_of_the_built_tree():
    parse_expression("x" + "+x" * 63, NAMES)
    with pytest.raises(ExpressionError, match="nested more than 200 levels"):
        parse_expression("x" + "+x" * 200, NAMES)
    with pytest.raises(ExpressionError, match="nested more than 5 levels"):
        parse_expression("-" * 5 + "x", NAMES, max_depth=5)


def test_numbers_beyond_the_digit_limit_are_refused_before_python_converts_them():
    start = time.perf_counter()
    for text in ("(" + "9" * 4000 + ")**64", "9" * 9980 + "*x", "0." + "0" * 200 + "1"):
        with pytest.raises(ExpressionError, match="longer than the limit of 100 digits"):
            parse_expression(text, NAMES)
    assert time.perf_counter() - start < TIME_BOUND_S


def test_numbers_at_the_digit_limit_are_kept_exactly():
    tree = parse_expression("9" * 100 + "*x", NAMES)
    assert tree == Binary("*", Num(Fraction(int("9" * 100))), Var("x"))


def test_non_text_and_one_string_of_names_are_rejected():
    for value in (b"x", 3, None, ["x"]):
        with pytest.raises(ExpressionError, match="expected text"):
            parse_expression(value, NAMES)
    with pytest.raises(TypeError, match="not one string"):
        parse_expression("x", "xy")


# --- fuzzing: nothing but ExpressionError, nothing executed, always fast ----------------------


def _check_outcome(result, source_tree=None):
    if isinstance(result, ExpressionError):
        return
    assert variables(result) <= set(NAMES)
    if source_tree is not None:
        _assert_only_allowed_nodes(source_tree)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_random_text(text):
    _check_outcome(parse_safely(text))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    assert isinstance(parse_safely(data), ExpressionError)
    for decoded in (data.decode("utf-8", "surrogateescape"), data.decode("latin-1")):
        _check_outcome(parse_safely(decoded))


TOKENS = [
    *NAMES, "pi", "sin", "cos", "exp", "sqrt", "__import__", "os", "__class__", "lambda", "for",
    "in", "if", "else", "0", "1", "2", "0.5", "1e9", "9**9", "(", ")", "[", "]", ".", ",", ":",
    "+", "-", "*", "/", "**", "^", "//", "%", "'s'", " ", "\n", "=", "==", "**(", "*(-",
]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_fuzz_token_soup(text):
    _check_outcome(parse_safely(text))


# Random syntax trees from allowed and forbidden node types, rendered with ast.unparse.
_ALLOWED_BINOPS = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow]
_FORBIDDEN_BINOPS = [ast.BitXor, ast.FloorDiv, ast.Mod, ast.MatMult, ast.LShift, ast.BitOr]
_LEAF_NAMES = [*NAMES, "pi", *FUNCTIONS, "__import__", "os", "eval", "undeclared"]
_target = ast.Name("x", ast.Store())
_NO_ARGS = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])


def _name(identifier):
    return ast.Name(identifier, ast.Load())


_numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(0, 70),
    st.floats(allow_nan=True, allow_infinity=True),
)
_other_constants = st.one_of(
    st.complex_numbers(), st.text(max_size=4), st.binary(max_size=4), st.booleans(), st.none()
)
_leaves = st.one_of(
    st.sampled_from(_LEAF_NAMES).map(_name),
    _numbers.map(ast.Constant),
    _other_constants.map(ast.Constant),
)


def _binops(children, ops):
    """``a op b`` of two children, ``op`` one of ``ops``."""
    ops = st.sampled_from(ops)
    return st.builds(lambda a, op, b: ast.BinOp(a, op(), b), children, ops, children)


def _allowed_branches(children, callees=(*FUNCTIONS, "__import__", "eval", "x"), arity=(1, 2)):
    return st.one_of(
        _binops(children, _ALLOWED_BINOPS),
        st.builds(lambda a: ast.UnaryOp(ast.USub(), a), children),
        st.builds(
            lambda f, args: ast.Call(_name(f), args, []),
            st.sampled_from(callees),
            st.lists(children, min_size=arity[0], max_size=arity[1]),
        ),
    )


def _forbidden_branches(children):
    return st.one_of(
        _binops(children, _FORBIDDEN_BINOPS),
        st.builds(lambda a: ast.UnaryOp(ast.Invert(), a), children),
        st.builds(
            lambda a, attr: ast.Attribute(a, attr, ast.Load()),
            children,
            st.sampled_from(["__class__", "__globals__", "system", "real"]),
        ),
        st.builds(lambda a, i: ast.Subscript(a, i, ast.Load()), children, children),
        st.builds(lambda a: ast.Lambda(_NO_ARGS, a), children),
        st.builds(
            lambda a, it: ast.ListComp(a, [ast.comprehension(_target, it, [], 0)]),
            children,
            children,
        ),
        st.builds(lambda a, b: ast.Compare(a, [ast.Lt()], [b]), children, children),
        st.builds(lambda a, b: ast.BoolOp(ast.Or(), [a, b]), children, children),
        st.builds(ast.IfExp, children, children, children),
        st.builds(lambda xs: ast.Tuple(xs, ast.Load()), st.lists(children, max_size=3)),
        st.builds(
            lambda f, a: ast.Call(f, [], [ast.keyword("x", a)]),
            st.sampled_from(FUNCTIONS).map(_name),
            children,
        ),
    )


# Allowed trees reach the building stage (and are often accepted), mostly-allowed ones fail late,
# mixed ones put forbidden nodes anywhere.
_allowed_leaves = st.one_of(
    st.sampled_from([*NAMES, "pi"]).map(_name),
    st.integers(0, 70).map(ast.Constant),
    st.floats(0, 1e6).map(ast.Constant),
)
_syntax_trees = st.one_of(
    st.recursive(_allowed_leaves, lambda c: _allowed_branches(c, FUNCTIONS, (1, 1)), max_leaves=25),
    st.recursive(st.one_of(_allowed_leaves, _leaves), _allowed_branches, max_leaves=25),
    st.recursive(
        _leaves,
        lambda c: st.one_of(_allowed_branches(c), _allowed_branches(c), _forbidden_branches(c)),
        max_leaves=25,
    ),
)


def _assert_only_allowed_nodes(tree):
    """An accepted text may contain nothing outside the allowlist."""
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call)
    allowed += (ast.Load, ast.USub, ast.UAdd, *_ALLOWED_BINOPS)
    for node in ast.walk(tree):
        assert isinstance(node, allowed), ast.dump(node)
        if isinstance(node, ast.Constant):
            assert type(node.value) in (int, float)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
        if isinstance(node, ast.Name):
            assert node.id in (*NAMES, "pi", *FUNCTIONS)


@FUZZ
@given(_syntax_trees)
def test_fuzz_random_syntax_trees(node):
    try:
        text = ast.unparse(ast.fix_missing_locations(ast.Expression(node)))
    except Exception:  # a tree ast.unparse itself cannot render says nothing about the parser
        assume(False)
    result = parse_safely(text)
    source_tree = (
        None if isinstance(result, ExpressionError) else ast.parse(text.strip(), mode="eval")
    )
    _check_outcome(result, source_tree)


def test_the_sentinels_would_catch_execution():
    with pytest.raises(Executed), nothing_may_execute():
        eval("1")  # proves the sentinel is live; never user input
    with pytest.raises(Executed), nothing_may_execute():
        __import__("os")


# --- round trip -------------------------------------------------------------------------------


def _growth(expr):
    """The product of nested exponents the parser caps (see llcgeo.parse)."""
    if isinstance(expr, (Num, Var, Const)):
        return 1
    if isinstance(expr, (Neg, Call)):
        return _growth(expr.operand if isinstance(expr, Neg) else expr.arg)
    if expr.op == "**":
        return _growth(expr.left) * max(1, abs(expr.right.value))
    return max(_growth(expr.left), _growth(expr.right))


_small_numbers = st.fractions(min_value=-50, max_value=50, max_denominator=12).map(Num)
_atoms = st.one_of(st.sampled_from(NAMES).map(Var), st.just(Const("pi")))


def _canonical_nodes(children):
    """Trees the parser builds: no operation on numbers alone (those fold to one number)."""
    non_number = children.filter(lambda e: not isinstance(e, Num))
    exponents = st.fractions(min_value=-3, max_value=3, max_denominator=2).map(Num)
    return st.one_of(
        st.builds(Neg, non_number),
        st.builds(Call, st.sampled_from(FUNCTIONS), children),
        st.builds(Binary, st.sampled_from(["+", "-", "*"]), non_number, children),
        st.builds(Binary, st.sampled_from(["+", "-", "*"]), children, non_number),
        st.builds(Binary, st.just("/"), non_number, children.filter(lambda e: e != Num(0))),
        st.builds(Binary, st.just("**"), non_number, exponents),
    )


_canonical_trees = st.recursive(st.one_of(_atoms, _small_numbers), _canonical_nodes, max_leaves=20)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_canonical_trees)
def test_round_trip_through_text(expr):
    assume(_growth(expr) <= 64)
    assert parse_expression(to_text(expr), NAMES) == expr
