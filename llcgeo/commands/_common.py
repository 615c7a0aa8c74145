"""Arguments shared by the commands that name a manifold and a layer."""

from __future__ import annotations

import argparse
import sys

from llcgeo import manifolds as mf
from llcgeo.errors import SpecError

MANIFOLDS = (
    "gaussian",
    "layernorm",
    "rmsnorm",
    "sphere",
    "simplex",
    "ellipsoid",
    "hyperplane",
    "bumped-hyperplane",
    "implicit",
    "parametric",
)


def _numbers(text: str | None):
    return None if text is None else [t for t in text.replace(",", " ").split() if t]


def add_manifold_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("manifold and layer")
    g.add_argument("--manifold", required=True, choices=MANIFOLDS)
    g.add_argument("--d", type=int, help="ambient dimension (derived for hyperplane/implicit/...)")
    g.add_argument("--m", type=int, required=True, help="output dimension of the layer")
    g.add_argument("--bias", action="store_true", help="the layer has a bias b")
    g.add_argument("--refine", default="all", choices=mf.REFINES)
    g.add_argument("--gain", help="layernorm/rmsnorm gain, comma separated (default all 1)")
    g.add_argument("--beta", help="layernorm learned bias, comma separated (default all 0)")
    g.add_argument("--radius", default="1", help="sphere radius")
    g.add_argument("--axes", help="ellipsoid semi-axes, comma separated")
    g.add_argument("--normal", help="hyperplane normal, comma separated")
    g.add_argument("--offset", default="0", help="hyperplane offset c in normal . x = c")
    g.add_argument("--kappa", default="0", help="bumped-hyperplane curvature")
    g.add_argument("--fraction", default="1", help="bumped-hyperplane curved mass fraction")
    g.add_argument("--equation", help="implicit: polynomial F in the variables, F = 0")
    g.add_argument("--variables", help="implicit: variable names, comma separated")
    g.add_argument("--phi", action="append", help="parametric: one coordinate (repeat per axis)")
    g.add_argument("--parameters", help="parametric: parameter names, comma separated")


def _needs_d(args) -> int:
    if args.d is None:
        raise SpecError(f"--d is required for --manifold {args.manifold}")
    return args.d


def _require(value, flag: str, manifold: str):
    if value is None:
        raise SpecError(f"{flag} is required for --manifold {manifold}")
    return value


def manifold_from_args(args) -> mf.ManifoldSpec:
    """The manifold spec the arguments describe (validated by the spec itself)."""
    name = args.manifold
    if name == "hyperplane":
        spec = mf.Hyperplane(_numbers(_require(args.normal, "--normal", name)), args.offset)
    elif name == "implicit":
        spec = mf.ImplicitHypersurface(
            _require(args.equation, "--equation", name),
            _require(args.variables, "--variables", name),
        )
    elif name == "parametric":
        spec = mf.ParametricManifold(
            tuple(_require(args.phi, "--phi", name)),
            _require(args.parameters, "--parameters", name),
        )
    else:
        spec = _dimensioned(name, _needs_d(args), args)
    if args.d is not None and args.d != spec.d:
        raise SpecError(f"--d {args.d} does not match the manifold's dimension {spec.d}")
    return spec


def _dimensioned(name: str, d: int, args) -> mf.ManifoldSpec:
    if name == "gaussian":
        return mf.Gaussian(d)
    if name == "layernorm":
        return mf.LayerNormImage(d, gain=_numbers(args.gain), bias=_numbers(args.beta))
    if name == "rmsnorm":
        return mf.RMSNormImage(d, gain=_numbers(args.gain))
    if name == "sphere":
        return mf.Sphere(d, radius=args.radius)
    if name == "simplex":
        return mf.Simplex(d)
    if name == "ellipsoid":
        return mf.Ellipsoid(d, axes=_numbers(args.axes) or ())
    return mf.BumpedHyperplane(d, kappa=args.kappa, fraction=args.fraction)


def layer_from_args(args) -> tuple[mf.LinearLayer, str]:
    layer = mf.LinearLayer(args.m, bias=args.bias)
    return layer, mf.check_refine(args.refine, layer)


def print_json(obj) -> None:
    """Strict JSON on stdout: numbers as JSON numbers, ``null`` where a value does not exist."""
    from llcgeo.serialize import dumps_output

    sys.stdout.write(dumps_output(obj, indent=2) + "\n")


def print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def add_sgld_arguments(parser: argparse.ArgumentParser, *, n_default: int = 20_000) -> None:
    g = parser.add_argument_group("data and SGLD")
    g.add_argument("--n", type=int, default=n_default, help="number of samples")
    g.add_argument("--chains", type=int, default=8)
    g.add_argument("--steps", type=int, default=3000)
    g.add_argument("--burnin", type=int, default=500)
    g.add_argument("--eps", type=float, default=1e-4)
    g.add_argument("--gamma", type=float, default=1.0)
    g.add_argument("--nbeta", type=float, default=None, help="default n / log n")
    g.add_argument("--batch-size", type=int, default=None, help="default: full batch")
    g.add_argument("--sigma", type=float, default=0.5, help="teacher output noise")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--seed", type=int, default=0)


def config_from_args(args):
    from llcgeo.config import SGLDConfig

    return SGLDConfig(
        eps=args.eps,
        gamma=args.gamma,
        nbeta=args.nbeta,
        chains=args.chains,
        steps=args.steps,
        burnin=args.burnin,
        batch_size=args.batch_size,
    )
