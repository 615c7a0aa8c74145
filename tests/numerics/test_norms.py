"""The one LayerNorm and RMSNorm every measurement applies, against torch's own."""

import torch

from llcgeo.numerics.measurements.norms import layer_norm, normalize, rms_norm

F64 = torch.float64


def _draws():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(50, 7, generator=gen, dtype=F64)
    return a, torch.linspace(0.5, 2.0, 7, dtype=F64), torch.linspace(-1.0, 1.0, 7, dtype=F64)


def test_layer_norm_matches_torch_with_population_variance():
    a, gain, bias = _draws()
    expected = torch.nn.functional.layer_norm(a, (7,), gain, bias, eps=1e-3)
    assert torch.allclose(layer_norm(a, gain, bias, 1e-3), expected, atol=1e-12)


def test_rms_norm_matches_torch():
    a, gain, _ = _draws()
    expected = torch.nn.functional.rms_norm(a, (7,), gain, eps=1e-3)
    assert torch.allclose(rms_norm(a, gain, 1e-3), expected, atol=1e-12)


def test_the_scale_is_the_local_lipschitz_factor():
    a, _, _ = _draws()
    for kind in ("layernorm", "rmsnorm"):
        out, scale = normalize(a, kind, 1e-3)
        centred = a - a.mean(-1, keepdim=True) if kind == "layernorm" else a
        assert torch.allclose(out, centred * scale[:, None], atol=1e-14)
    out, scale = normalize(a, "none")
    assert torch.equal(out, a) and torch.equal(scale, torch.ones(50, dtype=F64))
