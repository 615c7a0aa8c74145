"""The safe parser: user text in, an inert :mod:`llcgeo.expr` tree out, nothing executed.

``sympify`` and ``parse_expr`` call ``eval``, and restricted global dicts do not stop attribute
chains such as ``().__class__.__base__``. Here the text is only ever *read*: its length is
capped, Python's own parser turns it into a syntax tree (no code runs), and that tree is checked
node by node against an allowlist before a single :mod:`llcgeo.expr` node is built:

* numbers: ``int`` and finite ``float`` literals, kept exactly (``0.1`` is ``1/10``);
* declared names, and the constant ``pi`` (a declared name of the same spelling wins);
* ``+ - * / **`` and unary ``-``/``+``;
* calls ``f(arg)`` of ``sin``, ``cos``, ``exp``, ``sqrt`` with one positional argument.

The exponent of ``**`` must be a constant expression that folds to a rational ``|k| <=
max_exponent``, and nested powers multiply (``(x**8)**16`` raises ``x`` to the 128th), so their
product is capped by the same bound: no input can make a later exact fold explode. Constant
sub-expressions that fold to an exact rational become one number (``2**-1`` is ``1/2``); in
particular every exponent is a single number. Every number, as written or folded, has at most
:data:`llcgeo.limits.MAX_DIGITS` digits, and identifiers are compared after Unicode NFKC
normalization (as Python's parser reads them).
Everything else (attributes, subscripts, strings, lambdas, comprehensions, comparisons, ``^``,
``//``, keyword arguments...) is rejected with :class:`~llcgeo.errors.ExpressionError`, whose
message names ``what`` was being parsed and what was not allowed.

>>> parse_expression("x**2 + 0.5*y", ["x", "y"])
Binary(op='+', left=Binary(op='**', left=Var(name='x'), right=Num(value=Fraction(2, 1))), \
right=Binary(op='*', left=Num(value=Fraction(1, 2)), right=Var(name='y')))
>>> parse_expression("x.__class__", ["x"], what="demo")
Traceback (most recent call last):
...
llcgeo.errors.ExpressionError: demo: attribute access is not allowed (found 'x.__class__' at \
column 1)
>>> parse_number("-3/4")
Fraction(-3, 4)
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
import warnings
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from llcgeo.errors import ExpressionError, LLCGeoError
from llcgeo.expr import CONSTANTS, FUNCTIONS, Binary, Call, Const, Expr, Neg, Num, Var, fold
from llcgeo.limits import MAX_DIGITS, check_number

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_OPERATOR_HINTS = {
    ast.BitXor: "'^' is bitwise xor, not a power: use ** for powers",
    ast.FloorDiv: "'//' (floor division) is not allowed: use / for division",
    ast.Mod: "'%' is not allowed",
    ast.MatMult: "'@' is not allowed",
    ast.BitAnd: "'&' is not allowed",
    ast.BitOr: "'|' is not allowed",
    ast.LShift: "'<<' is not allowed",
    ast.RShift: "'>>' is not allowed",
    ast.Not: "'not' is not allowed",
    ast.Invert: "'~' is not allowed",
}
_NODE_PROBLEMS = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "assignment expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
}
_CONSTANT_PROBLEMS = {
    str: "strings are not allowed",
    bytes: "bytes are not allowed",
    complex: "imaginary numbers are not allowed",
    bool: "booleans are not allowed",
}
_LITERAL_EXPONENT = re.compile(r"[eE]([-+]?[0-9_]+)")
# a numeric literal as Python reads it; checked before Python converts it (which is slow and, past
# 4 300 digits, an error of its own)
_LITERAL = re.compile(r"(?<![\w.])[0-9][0-9_]*(?:\.[0-9_]*)?")
BOM = "\ufeff"


def normalized_name(name: str) -> str:
    """A name as Python's parser reads it (Unicode NFKC), so look-alikes such as the full-width
    ``ｘ`` and ``x`` are one name everywhere.

    >>> normalized_name("\uff58") == "x"
    True
    """
    return unicodedata.normalize("NFKC", name)


def parse_expression(
    text: str,
    names: Iterable[str],
    *,
    what: str = "expression",
    allow_calls: bool = True,
    max_length: int = 10_000,
    max_exponent: int = 64,
    max_depth: int = 200,
) -> Expr:
    """Read ``text`` as an expression in the declared ``names``, or raise ``ExpressionError``.

    >>> parse_expression("sin(t)**2 + cos(t)**2", ["t"]).op
    '+'
    >>> parse_expression("x**(10**9)", ["x"])
    Traceback (most recent call last):
    ...
    llcgeo.errors.ExpressionError: expression: the exponent 1000000000 is larger than 64 (found \
'x**(10**9)' at column 1)
    """
    source = _checked_text(text, what, max_length)
    tree = _syntax_tree(source, what)
    _check_depth(tree, what, max_depth)
    if isinstance(names, str):
        raise TypeError("names must be a sequence of names, not one string")
    declared = frozenset(normalized_name(str(n)) for n in names)
    builder = _Builder(source, declared, what, allow_calls, Fraction(max_exponent))
    return builder.build(tree.body)[0]


def parse_number(value: Any, what: str = "number") -> Fraction:
    """An exact number from an ``int``, a finite ``float`` or constant text like ``"1/3"``.

    >>> parse_number("0.1"), parse_number(2), parse_number("2**-2")
    (Fraction(1, 10), Fraction(2, 1), Fraction(1, 4))
    """
    if isinstance(value, bool):
        raise ExpressionError(f"{what}: expected a number, got the boolean {value}")
    if isinstance(value, (int, float)):
        return _checked_number(value, what)
    if not isinstance(value, str):
        raise ExpressionError(f"{what}: expected a number, got {type(value).__name__}")
    expr = parse_expression(value, (), what=what, allow_calls=False)
    if not isinstance(expr, Num):
        raise ExpressionError(f"{what}: {value!r} is not an exact rational number")
    return expr.value


def _checked_number(value: int | float, what: str) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{what}: expected a finite number, got {value}")
    exact = Fraction(repr(value)) if isinstance(value, float) else Fraction(value)
    try:
        return check_number(exact, what)
    except LLCGeoError as err:
        raise ExpressionError(str(err)) from None


def _checked_text(text: Any, what: str, max_length: int) -> str:
    if not isinstance(text, str):
        raise ExpressionError(f"{what}: expected text, got {type(text).__name__}")
    if len(text) > max_length:
        raise ExpressionError(
            f"{what}: the expression is {len(text)} characters long, more than {max_length}"
        )
    source = text.strip().lstrip(BOM).strip()
    if not source:
        raise ExpressionError(f"{what}: the expression is empty")
    for match in _LITERAL.finditer(source):
        count = sum(c.isdigit() for c in match.group())
        if count > MAX_DIGITS:
            raise ExpressionError(
                f"{what}: a number with {count} digits is longer than the limit of {MAX_DIGITS} "
                f"digits (found at column {match.start() + 1})"
            )
    return source


def _syntax_tree(source: str, what: str) -> ast.Expression:
    # Python's parser only reads; its own limits surface as these errors, never as execution.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "invalid decimal literal": we reject instead
            return ast.parse(source, mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"{what}: not a valid expression ({err.msg}{where})") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"{what}: the expression is nested too deeply to read") from None
    except ValueError as err:  # null bytes, unencodable surrogates
        raise ExpressionError(f"{what}: the text cannot be read ({err})") from None


def _check_depth(tree: ast.AST, what: str, max_depth: int) -> None:
    """Reject trees deeper than ``max_depth`` before anything recursive touches them."""
    stack = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ExpressionError(
                f"{what}: the expression is nested more than {max_depth} levels deep "
                "(every operator and every term of a sum adds a level)"
            )
        # only expression nodes count, so the depth matches that of the tree built from them
        stack.extend(
            (child, depth + isinstance(child, ast.expr)) for child in ast.iter_child_nodes(node)
        )


def _where(node: ast.AST, source: str) -> str:
    segment = ast.get_source_segment(source, node) if hasattr(node, "lineno") else None
    if segment is None:
        return ""
    if len(segment) > 40:
        segment = segment[:37] + "..."
    return f" (found {segment!r} at column {node.col_offset + 1})"


class _Builder:
    """Builds one tree; ``build`` returns ``(expr, growth)`` where ``growth`` is the product of
    the exponents stacked above the deepest term (capped by ``max_exponent``)."""

    def __init__(self, source, names, what, allow_calls, max_exponent):
        self.source = source
        self.names = names
        self.what = what
        self.allow_calls = allow_calls
        self.max_exponent = max_exponent

    def fail(self, problem: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(f"{self.what}: {problem}{_where(node, self.source)}")

    def build(self, node: ast.AST) -> tuple[Expr, Fraction]:
        if isinstance(node, ast.Constant):
            return self.number(node), Fraction(1)
        if isinstance(node, ast.Name):
            return self.name(node), Fraction(1)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        problem = _NODE_PROBLEMS.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.fail(problem, node)

    def number(self, node: ast.Constant) -> Num:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problem = _CONSTANT_PROBLEMS.get(type(value), f"the constant {value!r} is not allowed")
            raise self.fail(problem, node)
        if isinstance(value, int):
            return Num(self.checked(Fraction(value), node))
        return Num(self.exact_float(node))

    def exact_float(self, node: ast.Constant) -> Fraction:
        literal = (ast.get_source_segment(self.source, node) or repr(node.value)).replace("_", "")
        match = _LITERAL_EXPONENT.search(literal)
        if match and abs(int(match.group(1))) > MAX_DIGITS:
            raise self.fail(
                f"the number's decimal exponent is beyond +-{MAX_DIGITS} (the digit limit)", node
            )
        if not math.isfinite(node.value):
            raise self.fail(f"the number {node.value} is not finite", node)
        return self.checked(Fraction(literal), node)

    def checked(self, value: Fraction, node: ast.AST) -> Fraction:
        try:
            return check_number(value, self.what)
        except LLCGeoError as err:
            raise self.fail(str(err).removeprefix(f"{self.what}: "), node) from None

    def name(self, node: ast.Name) -> Expr:
        if node.id in self.names:
            return Var(node.id)
        if node.id in CONSTANTS:
            return Const(node.id)
        if node.id in FUNCTIONS:
            raise self.fail(f"{node.id} is a function: call it as {node.id}(...)", node)
        declared = ", ".join(sorted(self.names)) or "none"
        raise self.fail(
            f"unknown name {node.id!r} (declared names: {declared}; constant: pi)", node
        )

    def unary(self, node: ast.UnaryOp) -> tuple[Expr, Fraction]:
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.fail(
                _OPERATOR_HINTS.get(type(node.op), "this operator is not allowed"), node
            )
        operand, growth = self.build(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand, growth
        return self.folded(Neg(operand), node), growth

    def binary(self, node: ast.BinOp) -> tuple[Expr, Fraction]:
        if type(node.op) not in _BINARY:
            raise self.fail(
                _OPERATOR_HINTS.get(type(node.op), "this operator is not allowed"), node
            )
        left, left_growth = self.build(node.left)
        right, right_growth = self.build(node.right)
        if isinstance(node.op, ast.Pow):
            return self.power(node, left, left_growth, right)
        if isinstance(node.op, ast.Div) and _constant_value(right) == 0:
            raise self.fail("division by zero", node)
        expr = Binary(_BINARY[type(node.op)], left, right)
        return self.folded(expr, node), max(left_growth, right_growth)

    def power(self, node, base: Expr, growth: Fraction, exponent: Expr):
        if not isinstance(exponent, Num):
            raise self.fail("the exponent of ** must be a rational constant", node)
        k = exponent.value
        if abs(k) > self.max_exponent:
            raise self.fail(f"the exponent {k} is larger than {self.max_exponent}", node)
        growth = growth * max(abs(k), Fraction(1))
        if growth > self.max_exponent:
            raise self.fail(
                f"nested powers raise a term to the power {growth}, more than {self.max_exponent}",
                node,
            )
        return self.folded(Binary("**", base, exponent), node), growth

    def call(self, node: ast.Call) -> tuple[Expr, Fraction]:
        func = node.func.id if isinstance(node.func, ast.Name) else None
        if func not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            raise self.fail(f"only the functions {allowed} may be called", node)
        if not self.allow_calls:
            raise self.fail(f"function calls ({func}) are not allowed here", node)
        if node.keywords or len(node.args) != 1:
            raise self.fail(f"{func} takes exactly one argument and no keywords", node)
        arg, growth = self.build(node.args[0])
        return Call(func, arg), growth

    def folded(self, expr: Expr, node: ast.AST) -> Expr:
        """A constant sub-expression with an exact rational value becomes one number."""
        if not all(isinstance(part, Num) for part in _operands(expr)):
            return expr
        value = _constant_value(expr)
        if isinstance(value, ZeroDivisionError):
            raise self.fail("division by zero", node)
        if isinstance(value, complex):
            raise self.fail("the constant is not a real number", node)
        if isinstance(value, Fraction):
            return Num(self.checked(value, node))
        return expr


def _operands(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Neg):
        return (expr.operand,)
    return (expr.left, expr.right)


def _constant_value(expr: Expr) -> Any:
    """The exact value of a number node or of an operation on numbers; ``None`` otherwise."""
    if isinstance(expr, Num):
        return expr.value
    if not isinstance(expr, (Neg, Binary)) or not all(isinstance(p, Num) for p in _operands(expr)):
        return None
    try:
        return fold(expr, {}, {})
    except ZeroDivisionError as err:
        return err
    except (OverflowError, ValueError):
        return None
