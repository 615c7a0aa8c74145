"""How long exact predictions take: named families at d = 1024, random degree-4 polynomial
hypersurfaces in d = 12, and reducible or singular degree-4 ones in d = 12 (each with its
certificates and the numerical cross-check).

    python benchmarks/bench_theory.py
"""

from __future__ import annotations

import time

import numpy as np

from llcgeo import manifolds as mf
from llcgeo.theory import predicted_llc

NAMED = {
    "gaussian": mf.Gaussian(1024),
    "layernorm": mf.LayerNormImage(1024),
    "layernorm+gain+bias": mf.LayerNormImage(1024, gain=range(1, 1025), bias=[1] + [0] * 1023),
    "rmsnorm": mf.RMSNormImage(1024),
    "sphere": mf.Sphere(1024),
    "simplex": mf.Simplex(1024),
    "bumped-hyperplane": mf.BumpedHyperplane(1024, kappa="1/2", fraction="1/3"),
}


def seconds(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def random_quartic(d: int, terms: int, rng) -> str:
    names = [f"x{i + 1}" for i in range(d)]
    monomials = []
    for _ in range(terms):
        chosen = rng.choice(names, size=int(rng.integers(1, 5)))
        monomials.append(f"{int(rng.integers(1, 6)) * rng.choice([-1, 1])}*" + "*".join(chosen))
    return " + ".join(monomials) + " - 1"


def _sum_of_squares(names, shift: str = "") -> str:
    return " + ".join(f"({n}{shift})**2" for n in names)


def structured_quartics(d: int) -> dict[str, str]:
    """Degree-4 equations in d variables whose factors exercise every certificate."""
    names = [f"x{i + 1}" for i in range(d)]
    sphere = _sum_of_squares(names) + " - 1"
    return {
        "plane * sphere": f"({names[0]} + {names[1]} - 1/2)*({sphere})",
        "plane * empty quadric": f"({names[0]} - {names[-1]})*({_sum_of_squares(names)} + 1)",
        "plane * singular cone": f"{names[0]}*({_sum_of_squares(names[1:])})",
        "two irrational planes * sphere": f"({names[0]}**2 - 2*{names[1]}**2)*({sphere})",
        "squared plane * sphere": f"({names[0]} - 1/3)**2*({sphere})",
        "irreducible quartic": f"({sphere})**2 - {names[0]}*{names[1]}*{names[2]}*{names[3]}",
    }


def main() -> None:
    layer = mf.LinearLayer(64, bias=True)
    print("named families, d = 1024, m = 64, bias (best of 3):")
    for name, manifold in NAMED.items():
        print(f"  {name:<22} {seconds(lambda m=manifold: predicted_llc(m, layer)) * 1e3:8.1f} ms")
    rng = np.random.default_rng(0)
    names = [f"x{i + 1}" for i in range(12)]
    print("random degree-4 hypersurfaces, d = 12, 20 terms:")
    for trial in range(5):
        spec = mf.ImplicitHypersurface(random_quartic(12, 20, rng), names)
        t = seconds(lambda s=spec: predicted_llc(s, mf.LinearLayer(2)), repeat=1)
        print(f"  trial {trial}: {t:6.2f} s, LLC {predicted_llc(spec, mf.LinearLayer(2)).llc}")
    print("reducible and singular degree-4 hypersurfaces, d = 12:")
    for label, equation in structured_quartics(12).items():
        spec = mf.ImplicitHypersurface(equation, names)
        t = seconds(lambda s=spec: predicted_llc(s, mf.LinearLayer(2)), repeat=1)
        print(f"  {label:<32} {t:6.2f} s, LLC {predicted_llc(spec, mf.LinearLayer(2)).llc}")


if __name__ == "__main__":
    main()
