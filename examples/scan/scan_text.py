"""Scan a character-level transformer trained on the standard library's own source: every
reader of every norm, certified exactly, with LayerNorm against RMSNorm.

The text is the top-level modules of the Python standard library (every Python ships them),
read in sorted order; each printable ASCII character and the newline is a token, every other
character shares one. Two pre-norm transformers, 2 blocks, d_model 64, 4 heads, context 64,
identical but for their norms (LayerNorm with gain and bias in the blocks and a gain-only
LayerNorm before the unembedding, against RMSNorm everywhere), are trained from one seed with
Adam and scanned. Each block norm is read by the packed Q, K, V projection (192 x 64) and by the
MLP's first layer (256 x 64), the final norm by the unembedding.

Every row carries its exact certificate (the reader's directions that vanish on the norm's
trained image). The unembedding is a head the cross-entropy reads: its Hessian comes from its
structure (:func:`llcgeo.scanner.reader.head_hessian`), so it is refitted, ranked, predicted and
measured whole (6 048 directions). The readers inside the blocks (12 288 and 16 640 directions)
need Hessian-vector products through the rest of the network, each a tenth of a second on two
cores: each is measured on a block of its quotient (its first outputs, ``--block`` directions in
all, :mod:`llcgeo.scanner.block`), whose Hessian proves the reader's lower bound, and the block
is predicted, sampled and judged. The loss is taken on ``--rows`` windows.

    python examples/scan/scan_text.py [--out reports/example/scan] [--steps 3000] [--rows 16]
        [--measure-only head.weight]

The committed reports sample the head alone (``--measure-only head.weight``: 13 to 14 minutes a
scan on two cores beside another job; every reader is still refitted and predicted); sampling
each inner reader's block takes about 10 more minutes there.
"""

from __future__ import annotations

import argparse
import sysconfig
import time
import warnings
from fractions import Fraction
from pathlib import Path

import torch

from llcgeo import scan
from llcgeo.numerics.measurements.heads import SMOOTHING
from llcgeo.numerics.measurements.networks import TinyTransformer
from llcgeo.numerics.measurements.training import train
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.report.executors import make_executor

CONTEXT, WIDTH, HEADS, BLOCKS = 64, 64, 4, 2
ALPHABET = [chr(c) for c in range(32, 127)] + ["\n"]  # and one token for every other character
NORMS = {"layernorm": ("layernorm-affine", "layernorm"), "rmsnorm": ("rmsnorm", "rmsnorm")}


def corpus(chars: int) -> str:
    """The first ``chars`` characters of the standard library's top-level modules."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.glob("*.py")):
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        total += len(parts[-1])
        if total >= chars:
            break
    return "".join(parts)[:chars]


def token_ids(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(ALPHABET)}
    return torch.tensor([index.get(c, len(ALPHABET)) for c in text])


def windows(ids: torch.Tensor, count: int, seed: int):
    """``count`` windows of ``CONTEXT`` characters and the character after each position."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - CONTEXT - 1, (count,), generator=g)
    chunk = ids[starts[:, None] + torch.arange(CONTEXT + 1)]
    return chunk[:, :-1], chunk[:, 1:]


def trained(kind: str, ids, labels, steps: int) -> TinyTransformer:
    block_norm, final_norm = NORMS[kind]
    torch.manual_seed(0)
    model = TinyTransformer(len(ALPHABET) + 1, WIDTH, CONTEXT, final_norm, blocks=BLOCKS,
                            heads=HEADS, block_norm=block_norm)  # fmt: skip
    began = time.perf_counter()
    loss = train(model, ids, labels, steps=steps, lr=3e-3, batch=32, seed=0)
    print(f"{kind}: trained {steps} steps in {time.perf_counter() - began:.0f} s, "
          f"smoothed cross-entropy {loss:.3f} nats a character", flush=True)  # fmt: skip
    return model


def _progress(done: int, total: int, row) -> None:
    why = "" if row.verdict == "agree" else f" ({row.reason})"
    print(f"    {done}/{total} {row.reader}: {row.verdict}{why}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/example/scan")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps of 32 windows")
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text")
    parser.add_argument("--rows", type=int, default=16, help="windows the scan's loss is on")
    parser.add_argument("--block", type=int, default=64,
                        help="directions measured of a reader inside the network")  # fmt: skip
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--no-measure", action="store_true", help="certificates only")
    parser.add_argument("--measure-only", nargs="+", default=(), metavar="WEIGHT",
                        help="sample only these readers (weight names); the rest are refitted "
                        "and predicted (default: every reader)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes for the readers (default: one a core)")  # fmt: skip
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    ids = token_ids(corpus(args.chars))
    train_x, train_y = windows(ids, 4096, seed=0)
    scan_x, scan_y = windows(ids, 512, seed=1)
    drops = {}
    for kind in NORMS:
        model = trained(kind, train_x, train_y, args.steps)
        began = time.perf_counter()
        with make_executor("auto", args.workers) as executor:
            s = scan(model, scan_x, scan_y, loss=cross_entropy(SMOOTHING), rows=args.rows,
                     hessian_directions=args.block, chains=args.chains,
                     measure=not args.no_measure, only=tuple(args.measure_only),
                     executor=executor, progress=_progress)  # fmt: skip
        paths = s.report(f"{args.out}/text-{kind}")
        print(f"{kind}: scanned in {time.perf_counter() - began:.0f} s, {paths.markdown}")
        for row in s.table():
            print("   ", " | ".join(f"{k} {v}" for k, v in row.items()))
        drops[kind] = [(n.name, n.readers, n.certified_drop) for n in s.norms]
    print("certified drops against Gaussian features, norm by norm (LayerNorm | RMSNorm):")
    for (ln, readers, a), (rms, _, b) in zip(drops["layernorm"], drops["rmsnorm"], strict=True):
        print(f"    {ln} | {rms} ({', '.join(readers)}): {Fraction(a)} | {Fraction(b)}")


if __name__ == "__main__":
    main()
