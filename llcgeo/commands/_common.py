"""Arguments shared by the commands that name a manifold and a layer."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from dataclasses import replace

from llcgeo import manifolds as mf
from llcgeo.config import BATCH_DRAWS, CLI_SGLD, SAMPLERS, check_device
from llcgeo.errors import SpecError

# the spec keywords these flags give (a spec's other keywords, e.g. LayerNorm's eps, keep
# their defaults here: --eps is SGLD's step size)
_SAME_NAME = ("d", "gain", "radius", "axes", "normal", "offset", "kappa", "fraction")
_SAME_NAME += ("variables", "phi", "parameters")
_FLAG_OF = {**{k: k for k in _SAME_NAME}, "F": "equation", "bias": "beta"}
_LISTS = ("gain", "bias", "axes", "normal")  # comma-separated numbers


def _numbers(text: str | None):
    return None if text is None else [t for t in text.replace(",", " ").split() if t]


def add_manifold_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("manifold and layer")
    g.add_argument("--manifold", required=True, choices=tuple(mf.FAMILIES))
    g.add_argument("--d", type=int, help="ambient dimension (derived for hyperplane/implicit/...)")
    g.add_argument("--m", type=int, help="output dimension of the layer (required)")
    g.add_argument("--bias", action="store_true", help="the layer has a bias b")
    g.add_argument("--refine", default="all", choices=mf.REFINES)
    g.add_argument("--gain", help="layernorm/rmsnorm gain, comma separated (default all 1)")
    g.add_argument("--beta", help="layernorm learned bias, comma separated (default all 0)")
    g.add_argument("--radius", help="sphere radius (default 1)")
    g.add_argument("--axes", help="ellipsoid semi-axes, comma separated")
    g.add_argument("--normal", help="hyperplane normal, comma separated")
    g.add_argument("--offset", help="hyperplane offset c in normal . x = c (default 0)")
    g.add_argument("--kappa", help="bumped-hyperplane curvature (default 0)")
    g.add_argument("--fraction", help="bumped-hyperplane curved mass fraction (default 1)")
    g.add_argument("--equation", help="implicit: polynomial F in the variables, F = 0")
    g.add_argument("--variables", help="implicit: variable names, comma separated")
    g.add_argument("--phi", action="append", help="parametric: one coordinate (repeat per axis)")
    g.add_argument("--parameters", help="parametric: parameter names, comma separated")


def manifold_from_args(args) -> mf.ManifoldSpec:
    """The manifold spec the arguments describe (through the one registry, validated by the
    spec itself)."""
    name = args.manifold
    values = {}
    for key in mf.family_keys(name):
        flag = _FLAG_OF.get(key)
        value = None if flag is None else getattr(args, flag, None)
        if value is None and key in mf.required_keys(name):
            raise SpecError(f"--{flag} is required for --manifold {name}")
        if value is not None:
            values[key] = _numbers(value) if key in _LISTS else value
    if name == "parametric":
        values["phi"] = tuple(values["phi"])
    spec = mf.build(name, **values)
    if args.d is not None and args.d != spec.d:
        raise SpecError(f"--d {args.d} does not match the manifold's dimension {spec.d}")
    return spec


def layer_from_args(args) -> tuple[mf.Head, str]:
    """The layer the flags name: a softmax head with ``--classes K`` (where a command offers
    it), else a linear layer of ``--m`` outputs."""
    classes = getattr(args, "classes", None)
    if classes is not None:
        if args.m is not None:
            raise SpecError("give --m (a linear layer) or --classes (a softmax head), not both")
        layer = mf.SoftmaxHead(classes, bias=args.bias)
    elif args.m is None:
        raise SpecError("--m (the layer's output dimension) is required")
    else:
        layer = mf.LinearLayer(args.m, bias=args.bias)
    return layer, mf.check_refine(args.refine, layer)


def add_case_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """The parser of a command that measures one case (``kwargs`` go to ``add_parser``): the
    manifold and layer flags, then the data and SGLD flags (:func:`case_from_args` reads them)."""
    parser = subparsers.add_parser(name, **kwargs)
    add_manifold_arguments(parser)
    add_sgld_arguments(parser)
    return parser


def case_from_args(args):
    """The case the flags of :func:`add_case_parser` name, checked in this order: its manifold,
    its layer and the parameters refined, and the SGLD settings (:func:`config_from_args`)."""
    manifold = manifold_from_args(args)
    layer, refine = layer_from_args(args)
    return manifold, layer, refine, config_from_args(args)


def add_json_argument(group) -> None:
    """``--json``: the command prints one JSON object (:func:`print_json`) instead of a table."""
    group.add_argument("--json", action="store_true", help="print one JSON object")


JSON_DIGITS = 8  # significant digits of a float in a command's JSON: past any estimate's precision


def print_json(obj) -> None:
    """Strict JSON on stdout: numbers as JSON numbers (to ``JSON_DIGITS`` significant digits),
    ``null`` where a value does not exist."""
    from llcgeo.serialize import dumps_output

    sys.stdout.write(dumps_output(obj, indent=2, digits=JSON_DIGITS) + "\n")


COLUMNS = 100  # everything printed for a person fits a terminal this wide


def print_table(rows: list[tuple[str, object]], stream=None) -> None:
    """``key  value`` lines, keys aligned, a long value wrapped under itself; a float shown to
    six significant figures."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines = textwrap.wrap(shown, COLUMNS - width - 2) or [""]
        print(f"{key:<{width}}  {lines[0]}", file=stream)
        for line in lines[1:]:
            print(" " * (width + 2) + line, file=stream)


def print_note(text: str, *, first: str = "", rest: str = "    ", stream=None) -> None:
    """``text`` wrapped at ``COLUMNS``, the first line led by ``first``, the rest by ``rest``."""
    print(textwrap.fill(text, COLUMNS, initial_indent=first, subsequent_indent=rest,
                        break_on_hyphens=False), file=stream)  # fmt: skip


def print_columns(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table of right-aligned text columns under their headers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths)).rstrip())


def add_sgld_arguments(parser: argparse.ArgumentParser, *, n_default: int = 20_000) -> None:
    """The data and SGLD flags of every command that samples; their defaults are
    :data:`llcgeo.config.CLI_SGLD`'s (why they differ from ``SGLDConfig()``'s is said there)."""
    c = CLI_SGLD
    g = parser.add_argument_group("data and SGLD")
    g.add_argument("--n", type=int, default=n_default, help="number of samples")
    g.add_argument("--chains", type=int, default=c.chains)
    g.add_argument("--steps", type=int, default=c.steps)
    g.add_argument("--burnin", type=int, default=c.burnin)
    g.add_argument(
        "--eps",
        type=_eps,
        default=c.eps,
        help="the step size, or auto: eps, gamma, burn-in and steps from llcgeo calibrate",
    )
    g.add_argument("--gamma", type=float, default=c.gamma)
    g.add_argument("--nbeta", type=float, default=c.nbeta, help="default n / log n")
    g.add_argument("--batch-size", type=int, default=c.batch_size, help="default: full batch")
    g.add_argument(
        "--batches",
        choices=BATCH_DRAWS,
        default=c.batches,
        help="how minibatches are drawn: epochs of a permutation (devinterp's), or each anew "
        "(the exact minibatch reference holds for these)",
    )
    g.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=c.sampler,
        help="sgld, or mala: the same proposal with an exact Metropolis test (full batch), "
        "free of step-size bias",
    )
    g.add_argument("--sigma", type=float, default=0.5, help="teacher output noise")
    add_device_argument(g)
    g.add_argument("--seed", type=int, default=0)


def add_device_argument(group) -> None:
    """``--device``, ``auto`` by default: checked by :func:`llcgeo.config.check_device` when
    the settings are read (:func:`config_from_args`) and resolved by
    :func:`llcgeo.numerics.device.resolve_device` where the problem is built."""
    group.add_argument(
        "--device", default="auto", help="auto (a GPU if present), cpu, cuda or cuda:N"
    )


def _eps(text: str):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or auto, got {text!r}") from None


def config_from_args(args):
    """The SGLD settings of the flags (with ``--eps auto``, the placeholder eps that
    :func:`settled` replaces), the rest :data:`~llcgeo.config.CLI_SGLD`'s; a device name that
    cannot be one fails here, before any data are drawn."""
    check_device(args.device)
    return replace(
        CLI_SGLD,
        eps=CLI_SGLD.eps if args.eps == "auto" else args.eps,
        gamma=args.gamma,
        nbeta=args.nbeta,
        chains=args.chains,
        steps=args.steps,
        burnin=args.burnin,
        batch_size=args.batch_size,
        batches=args.batches,
        sampler=args.sampler,
        acceptance=getattr(args, "acceptance", CLI_SGLD.acceptance),
    )


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's cases run (:mod:`llcgeo.report.executors`)."""
    g = parser.add_argument_group("where the cases run")
    g.add_argument(
        "--scheduler",
        default="auto",
        metavar="WHERE",
        help="auto (default: one worker process a core where there are several, else this "
        "process), inprocess, processes (local worker processes), dask (a Dask LocalCluster "
        "on this machine) or the address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes for processes or dask (default: the cores)",
    )


def executor_from_args(args):
    from llcgeo.report.executors import make_executor

    return make_executor(args.scheduler, args.workers)  # --workers 1: this process


def case_problem(args, manifold, layer, refine, config):
    """The case's problem (its teacher-student data drawn from ``--seed``, the layer fitted),
    built once for the calibration and the measurement that follows it."""
    from llcgeo.numerics.measurements.teacher_student import case_problem as build

    return build(manifold, layer, refine, args.n, config, seed=args.seed, sigma=args.sigma,
                 device=args.device)  # fmt: skip


def calibrated(args, problem, config):
    """:func:`llcgeo.reconcile.calibration.calibrate_problem` with the command's targets."""
    from llcgeo.reconcile.calibration import calibrate_problem

    targets = {  # only `llcgeo calibrate` has flags for them; --eps auto takes the defaults
        name: getattr(args, f"{name}_target")
        for name in ("bias", "localization", "se")
        if hasattr(args, f"{name}_target")
    }
    return calibrate_problem(
        problem,
        config,
        seed=args.seed,
        progress=step_progress(sys.stderr, "calibrating"),
        **targets,
    )


def settled(args, manifold, layer, refine, config):
    """``(config, problem)``: the case's problem, and ``config`` calibrated on it when
    ``--eps auto`` asked for it (its reasons go to stderr)."""
    problem = case_problem(args, manifold, layer, refine, config)
    if args.eps != "auto":
        return config, problem
    calibration = calibrated(args, problem, config)
    for reason in calibration.recommendation.reasons:
        print_note(reason, first="llcgeo: --eps auto: ", stream=sys.stderr)
    return calibration.config, problem


BAR_WIDTH = 30
QUIET_SECONDS = 2.0  # off a terminal, a run shorter than this prints no progress at all


def step_progress(stream, label: str = "sampling"):
    """A ``progress(done, total)`` callback with the time left, from the pace so far: one
    updating bar on a terminal; in a log, a line at each tenth once the run has taken
    ``QUIET_SECONDS`` (so a quick run stays silent)."""
    from llcgeo.report.formatting import format_seconds

    began, shown = time.perf_counter(), [0]
    terminal = stream.isatty()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - began
        left = format_seconds(elapsed * (total - done) / max(done, 1))
        if terminal:
            filled = BAR_WIDTH * done // total
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            stream.write(f"\r{label} [{bar}] {done}/{total} steps, about {left} left")
            stream.write("\n" if done == total else "")
        elif elapsed >= QUIET_SECONDS and 10 * done // total > shown[0]:
            shown[0] = 10 * done // total
            stream.write(f"{label}: {done} of {total} steps, about {left} left\n")
        stream.flush()

    return progress
