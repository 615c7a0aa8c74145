"""Scan trained networks: every norm, every linear map that reads it, certified, predicted,
measured and judged (``llcgeo.scan``).

Trains the ``network`` suite's two models from a seed, once with LayerNorm and once with
RMSNorm: an MLP on the handwritten digits scikit-learn ships, and a pre-norm transformer on a
synthetic sequence task; then scans each and writes one report a model under ``OUT``. The
transformer's block norms are read by the packed Q, K, V projection and the MLP's first layer,
its final norm by the unembedding: every reader is certified, refitted, predicted and measured
(about 20 minutes on two cores; ``--heads-only`` samples the heads alone, in about 4).

    python examples/scan/scan_networks.py [--out reports/example/scan] [--quick] [--heads-only]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from llcgeo import scan
from llcgeo.numerics.measurements.heads import SMOOTHING
from llcgeo.numerics.measurements.networks import MLPClassifier, TinyTransformer
from llcgeo.numerics.measurements.training import sequence_task, train
from llcgeo.numerics.paths.losses import cross_entropy


def digits(norm: str):
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = torch.tensor(data.data / 16.0), torch.tensor(data.target)
    torch.manual_seed(0)
    model = MLPClassifier(64, 6, 10, norm).double()
    train(model, x, y, steps=300, lr=1e-2, batch=None, seed=0)
    return model, x, y


def transformer(norm: str):
    ids, labels = sequence_task(192, 8, 8, seed=0)
    torch.manual_seed(0)
    model = TinyTransformer(8, 8, 8, norm).double()
    train(model, ids, labels, steps=400, lr=1e-2, batch=64, seed=0)
    return model, ids, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/example/scan")
    parser.add_argument("--quick", action="store_true", help="fewer draws (a smoke run)")
    parser.add_argument("--heads-only", action="store_true",
                        help="sample the heads alone (the rest predicted)")  # fmt: skip
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    draws = 1000 if args.quick else 8000
    for name, build in (("digits", digits), ("transformer", transformer)):
        heads = {}
        for norm in ("layernorm", "rmsnorm"):
            model, x, y = build(norm)
            only = ("head.weight",) if args.heads_only else ()
            began = time.perf_counter()
            s = scan(model, x, y, loss=cross_entropy(SMOOTHING), draws=draws, only=only,
                     refine="weight" if name == "digits" else "all")  # fmt: skip
            paths = s.report(f"{args.out}/{name}-{norm}")
            print(f"{name} with {norm}: {time.perf_counter() - began:.0f} s, {paths.markdown}")
            for row in s.table():
                print("   ", " | ".join(f"{k} {v}" for k, v in row.items()))
            heads[norm] = next(r for r in s.rows if r.reader == "head.weight")
        print(f"{name}: the head's drop from RMSNorm to LayerNorm, {_drop(heads)}")


def _drop(heads) -> str:
    """Predicted from the certificates; measured less each run's exact settings bias."""
    ln, rms = heads["layernorm"], heads["rmsnorm"]
    predicted = (rms.certificate.quotient - ln.certificate.quotient) / 2

    def corrected(r):
        return r.estimate.mean - (r.expected - r.certificate.quotient / 2)

    se = (ln.estimate.se**2 + rms.estimate.se**2) ** 0.5
    return f"predicted {predicted:g}, measured {corrected(rms) - corrected(ln):.2f} +- {se:.2f}"


if __name__ == "__main__":
    main()
