"""The budget is an object: entry points take it as ``budget=``, the command line builds it from
its flags, workers run under the caller's, and the environment is read once, at the edge."""

from __future__ import annotations

import ast
import math
import os
import pathlib

import pytest
import torch

from llcgeo import cli, estimate_llc, limits, predicted_llc
from llcgeo.config import SGLDConfig
from llcgeo.errors import DerivationError, SpecError
from llcgeo.limits import MEMORY_ENV, TIME_ENV, Budget, current_budget, using
from llcgeo.manifolds import ImplicitHypersurface, LinearLayer
from llcgeo.report.executors import InProcess, LocalProcesses, Task

LIMITS_SOURCE = pathlib.Path(limits.__file__)
PACKAGE = LIMITS_SOURCE.parent
CASE = ["--manifold", "sphere", "--d", "3", "--m", "1", "--n", "200"]
TINY_GB = "1e-9"  # about one byte: any run is over it
GIB = 2**30


@pytest.fixture(autouse=True)
def no_budget_in_environment(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    monkeypatch.delenv(TIME_ENV, raising=False)


def _memory_in_force(job, device):
    """A task: the memory limit where it runs (module level, so a worker can unpickle it)."""
    return limits.memory_limit()


def _labels(rows: int = 100):
    g = torch.Generator().manual_seed(0)
    return torch.randn(rows, 4, generator=g), torch.randint(0, 3, (rows,), generator=g)


# --- the object ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"memory": 0}, "Budget.memory"),
        ({"memory": -5}, "Budget.memory"),
        ({"memory": True}, "Budget.memory"),
        ({"memory": "4"}, "Budget.memory"),
        ({"run_seconds": 0}, "Budget.run_seconds"),
        ({"run_seconds": math.nan}, "Budget.run_seconds"),
        ({"derivation_seconds": "60"}, "Budget.derivation_seconds"),
        ({"derivation_seconds": -1.0}, "Budget.derivation_seconds"),
    ],
)
def test_a_bad_field_is_refused_naming_it_and_its_value(fields, named):
    (value,) = fields.values()
    with pytest.raises(SpecError, match=f"^{named} must be a positive number.*got {value!r}$"):
        Budget(**fields)


def test_infinity_means_no_bound_and_the_defaults_are_the_modules():
    free = Budget(memory=math.inf, run_seconds=math.inf, derivation_seconds=math.inf)
    assert free.memory is None and math.isinf(free.run_seconds)
    default = Budget()
    assert default.memory == limits.default_memory()
    assert (default.run_seconds, default.derivation_seconds) == (
        limits.RUN_SECONDS,
        limits.DERIVATION_SECONDS,
    )


def test_the_time_flag_sets_both_bounds_and_an_unset_flag_keeps_the_default():
    assert Budget.of(time_limit="120") == Budget(run_seconds=120, derivation_seconds=120)
    assert Budget.of(max_memory="4").memory == 4 * GIB
    assert Budget.of(max_memory="inf", time_limit=" ").memory is None
    assert Budget.of() == Budget()
    base = Budget(memory=5, run_seconds=7, derivation_seconds=3)
    assert Budget.of(time_limit="9", base=base) == Budget(memory=5, run_seconds=9,
                                                          derivation_seconds=9)  # fmt: skip


@pytest.mark.parametrize(("flags", "named"), [({"max_memory": "lots"}, "--max-memory"),
                                              ({"time_limit": "0"}, "--time-limit")])  # fmt: skip
def test_a_bad_flag_is_refused_naming_the_flag(flags, named):
    with pytest.raises(SpecError, match=f"^{named} must be"):
        Budget.of(**flags)


def test_the_environment_is_read_afresh_each_time(monkeypatch):
    assert current_budget() == Budget()
    monkeypatch.setenv(MEMORY_ENV, "3")
    monkeypatch.setenv(TIME_ENV, "30")
    assert current_budget() == Budget(memory=3 * GIB, run_seconds=30, derivation_seconds=30)
    monkeypatch.setenv(TIME_ENV, "soon")
    with pytest.raises(SpecError, match=f"^{TIME_ENV} must be a number, got 'soon'"):
        Budget.from_environment()


def test_using_puts_a_budget_in_force_for_its_block_only():
    tight = Budget(memory=10, run_seconds=2, derivation_seconds=1)
    with using(tight):
        assert (limits.memory_limit(), limits.run_seconds(), limits.derivation_seconds()) == (
            10, 2.0, 1.0)  # fmt: skip
        with using(None):
            assert current_budget() is tight
    assert current_budget() == Budget()
    with (
        pytest.raises(SpecError, match="budget must be an llcgeo.limits.Budget"),
        using({"memory": 10}),
    ):
        pass


# --- the command line ---------------------------------------------------------------------------


def test_the_memory_flag_reaches_the_check_without_touching_the_environment(monkeypatch, capsys):
    before = dict(os.environ)
    seen = []
    check = limits.memory_limit

    def watched():
        seen.append(dict(os.environ))
        return check()

    monkeypatch.setattr(limits, "memory_limit", watched)
    assert cli.main(["estimate", *CASE, "--max-memory", TINY_GB]) == 2
    assert "more than the budget of 9.31e-10 GB" in capsys.readouterr().err
    assert seen and all(environment == before for environment in seen)
    assert dict(os.environ) == before
    assert current_budget() == Budget()  # the flag's budget ended with the command


def test_a_bad_flag_fails_before_any_work(capsys):
    assert cli.main(["estimate", *CASE, "--time-limit", "later"]) == 2
    assert "--time-limit must be a number, got 'later'" in capsys.readouterr().err


def test_an_unset_flag_falls_back_to_its_variable(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "3")
    monkeypatch.setenv(TIME_ENV, "30")
    args = cli.build_parser().parse_args(["estimate", *CASE, "--time-limit", "5"])
    assert cli.budget_of(args) == Budget(memory=3 * GIB, run_seconds=5, derivation_seconds=5)


# --- the Python keyword -------------------------------------------------------------------------


def test_the_budget_keyword_refuses_a_run_the_default_budget_lets_through():
    x, y = _labels()
    config = SGLDConfig(chains=2, steps=40, burnin=10)
    model = torch.nn.Linear(4, 3)
    run = {"loss": "cross_entropy", "config": config, "device": "cpu"}
    with pytest.raises(SpecError, match="more than the budget of 9.31e-10 GB"):
        estimate_llc(model, x, y, **run, budget=Budget(memory=1))
    with pytest.raises(SpecError, match="more than the budget of .* and 1e-06 s"):
        estimate_llc(model, x, y, **run, budget=Budget(run_seconds=1e-6))
    assert current_budget() == Budget()
    assert math.isfinite(estimate_llc(model, x, y, **run).mean)


def test_the_derivation_bound_is_its_own_field():
    surface = ImplicitHypersurface("x**2 + 3*y**2 + z**2 - 1", ("x", "y", "z"))
    with pytest.raises(DerivationError, match="time limit of 1e-09 s"):
        predicted_llc(surface, LinearLayer(m=1), budget=Budget(derivation_seconds=1e-9))
    assert predicted_llc(surface, LinearLayer(m=1), budget=Budget(run_seconds=1e-9)).llc > 0


# --- workers ------------------------------------------------------------------------------------


def test_tasks_run_under_the_callers_budget_in_this_process_and_in_workers():
    caller, own = Budget(memory=12_345 * 1024), Budget(memory=7)
    tasks = [Task(0, _memory_in_force, None, "cpu"), Task(1, _memory_in_force, None, "cpu", own)]
    with LocalProcesses(1) as pool, using(caller):
        in_workers = {index: record for index, record, _ in pool.results(tasks)}
        in_process = {index: record for index, record, _ in InProcess().results(tasks)}
    assert in_workers == in_process == {0: caller.memory, 1: own.memory}


# --- the edge -----------------------------------------------------------------------------------


def _environment_reads(path: pathlib.Path) -> list[str]:
    """The function (or ``<module>``) of each simple statement of ``path`` that reads the
    environment (``os.environ``, ``getenv``) and names a budget variable."""
    names = ("MEMORY_ENV", "TIME_ENV", MEMORY_ENV, TIME_ENV)
    reads = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        simple = isinstance(node, ast.stmt) and not hasattr(node, "body")
        if simple and _touches_environment(node) and any(n in ast.unparse(node) for n in names):
            reads.append(function)
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text()), "<module>")
    return reads


def _touches_environment(statement: ast.stmt) -> bool:
    """Whether ``statement``'s code (not its text: a docstring may name the variables) uses
    ``environ`` or ``getenv``, however imported."""
    return any(
        (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"))
        or (isinstance(node, ast.Name) and node.id in ("environ", "getenv"))
        for node in ast.walk(statement)
    )


def test_only_budget_from_environment_reads_the_variables():
    reads = {
        str(path.relative_to(PACKAGE)): _environment_reads(path) for path in PACKAGE.rglob("*.py")
    }
    assert {path: found for path, found in reads.items() if found} == {
        "limits.py": ["from_environment"]
    }
