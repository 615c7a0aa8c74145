"""The layers keep to themselves: theory never loads torch, numerics never loads sympy, and no
module hands text to eval or sympify."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "llcgeo"


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [("llcgeo.theory", "torch"), ("llcgeo.numerics", "sympy"), ("llcgeo", "torch")],
)
def test_importing_a_layer_does_not_load_the_other(module, forbidden):
    code = f"import sys, {module}; print({forbidden!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_eval_or_sympify_on_text():
    pattern = re.compile(r"(^|[^_.\w])(sympify|eval|exec|parse_expr)\(")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "llcgeo.hypotheses.schema",
        "llcgeo.hypotheses.judging",
        "llcgeo.suites",
        "llcgeo.reconcile.design",
        "llcgeo.reconcile.model",
        "llcgeo.config",
        "llcgeo.validate",
        "llcgeo.manifolds",
    ],
)
def test_validating_input_loads_neither_torch_nor_sympy(module):
    code = f"import sys, {module}; print('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_an_invalid_hypothesis_file_is_refused_before_torch_loads(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[manifold]\nfamily = 'sphere'\nd = 3\n[layer]\nm = 0\n[claims]\nllc = '1'\n")
    code = (
        "import sys\nfrom llcgeo import cli\n"
        f"status = cli.main(['check', {str(path)!r}])\n"
        "print(status, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 False" and "layer" in out.stderr


# each room of the package and how high it stands; a module may import only from its own height
# or below (the top-level modules: manifolds, config, limits, ... stand at 0)
HEIGHTS = {
    "theory": 1, "numerics": 1, "reconcile": 2, "suites": 3, "hypotheses": 3,
    "testing": 3, "scanner": 3, "report": 4, "commands": 5, "cli": 5,
}  # fmt: skip


def _height(module: str) -> int:
    parts = module.split(".")
    return HEIGHTS.get(parts[1], 0) if len(parts) > 1 else 0


def _imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text())):  # imports inside functions count too
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def test_no_import_runs_upward():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for name, line in _imports(path):
            if name.startswith("llcgeo.") and _height(name) > _height(module):
                upward.append(f"{module}:{line} imports {name}")
    assert upward == []


# numerics' own rooms, bottom to top: the sampling core knows no model; the paths make a model a
# Problem; the runner joins a path to a kernel (the plan times it), estimate and sweep run it; the
# suites' measurements use them all. device, result and the config re-export serve every room.
NUMERICS_HEIGHTS = {
    "config": 0, "device": 0, "result": 0, "sampling": 1, "paths": 2, "runner": 3, "plan": 3,
    "estimate": 4, "sweep": 4, "measurements": 5, "__init__": 6,
}  # fmt: skip


def _numerics_room(module: str) -> str:
    """``llcgeo.numerics.paths.linear`` -> ``paths``; the package itself is its ``__init__``."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else "__init__"


def test_every_numerics_module_stands_in_a_room():
    rooms = {_numerics_room(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts))
             for p in (PACKAGE / "numerics").rglob("*.py")}  # fmt: skip
    assert rooms <= set(NUMERICS_HEIGHTS), rooms - set(NUMERICS_HEIGHTS)


def test_numerics_rooms_import_only_downward():
    """No sampling module imports from the paths or the measurements, no path from the runner,
    the estimate or the measurements: each room imports from its own height or below."""
    upward = []
    for path in (PACKAGE / "numerics").rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        here = NUMERICS_HEIGHTS[_numerics_room(module)]
        for name, line in _imports(path):
            if (name == "llcgeo.numerics" or name.startswith("llcgeo.numerics.")) and (
                NUMERICS_HEIGHTS[_numerics_room(name)] > here
            ):
                upward.append(f"{module}:{line} imports {name}")
    assert upward == []
