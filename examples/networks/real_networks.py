"""The LLC of trained networks with estimate_llc: a digits classifier and a small transformer.

Trains both (seeded, seconds on a CPU), then estimates with SGLD under the cross-entropy:
the whole classifier from a DataLoader, its head alone on frozen features (the weight-refined
LLC that theory predicts exactly: (K - 1) r / 2), and the transformer from integer token ids.

    python examples/networks/real_networks.py [--quick]
"""

from __future__ import annotations

import argparse
import warnings

import torch
from sklearn.datasets import load_digits

from llcgeo import LayerNormImage, SGLDConfig, SoftmaxHead, calibrate, estimate_llc
from llcgeo.numerics.measurements.heads import SMOOTHING
from llcgeo.numerics.measurements.networks import MLPClassifier, TinyTransformer
from llcgeo.numerics.measurements.training import head_module, sequence_task, trained_head
from llcgeo.numerics.paths.losses import cross_entropy
from llcgeo.theory import predicted_llc


def classifier(config: SGLDConfig) -> None:
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0), torch.tensor(digits.target)
    trained = trained_head(lambda: MLPClassifier(64, 6, 10, "layernorm"), x, y, steps=300,
                           lr=1e-2, batch=None, seed=0, moving_bias=False)  # fmt: skip
    model = trained.model
    with torch.no_grad():
        model.head.weight.copy_(trained.weight)  # the head at the minimum of its loss
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=512)
    loss = cross_entropy(SMOOTHING)
    whole = estimate_llc(model, loader, None, loss=loss, config=config)
    print(f"digits MLP, all parameters: {whole.mean:.2f} +- {whole.se:.2f}; {whole.warnings}")
    head, masks = head_module(trained, moving_bias=False)  # the weight moves, the bias not
    # settings from the head's own Hessian spectrum (eps, gamma, chain length, with reasons)
    cal = calibrate(head, trained.features, trained.labels, loss=loss, param_masks=masks,
                    config=config)  # fmt: skip
    tuned = cal.config
    refined = estimate_llc(head, trained.features, trained.labels, loss=loss, config=tuned,
                           param_masks=masks)  # fmt: skip
    exact = predicted_llc(LayerNormImage(6), SoftmaxHead(10, bias=True), refine="weight").llc
    print(f"its head's wrLLC: {refined.mean:.2f} +- {refined.se:.2f} at eps {tuned.eps:.2g}, "
          f"gamma {tuned.gamma:.2g} (theory: {exact}; the estimator's expectation on the "
          f"quadratic model at these settings: {cal.recommendation.expected:.2f})")  # fmt: skip


def transformer(config: SGLDConfig) -> None:
    ids, labels = sequence_task(128, 8, 8, seed=0)
    trained = trained_head(lambda: TinyTransformer(8, 8, 8, "rmsnorm"), ids, labels, steps=300,
                           lr=1e-2, batch=64, seed=0, moving_bias=False)  # fmt: skip
    e = estimate_llc(trained.model, ids, labels, loss="cross_entropy", config=config)
    print(f"transformer on token ids, all parameters: {e.mean:.2f} +- {e.se:.2f}; {e.warnings}")


def main() -> None:
    warnings.filterwarnings("ignore", message="There is a performance drop")  # torch's vmap
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke run")
    steps = 60 if parser.parse_args().quick else 2000
    config = SGLDConfig(eps=1e-4, gamma=100.0, chains=4, steps=steps, burnin=steps // 5)
    classifier(config)
    transformer(config)


if __name__ == "__main__":
    main()
