"""Fixtures shared by the test folders."""

import pytest
import torch

F64 = torch.float64


@pytest.fixture
def fitted_linear():
    """A factory ``fit(n, seed) -> (layer, x, y)``: a ``Linear(3, 2)`` at the least-squares fit
    of ``n`` noisy samples (noise 0.5) of a random teacher, everything drawn from ``seed``."""
    from llcgeo.numerics.paths.linear import design_matrix

    def fit(n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, generator=g, dtype=F64)
        z = design_matrix(x, True)
        teacher = torch.randn(2, 4, generator=g, dtype=F64)
        y = z @ teacher.T + 0.5 * torch.randn(n, 2, generator=g, dtype=F64)
        theta = torch.linalg.lstsq(z, y).solution.T
        layer = torch.nn.Linear(3, 2, dtype=F64)
        with torch.no_grad():
            layer.weight.copy_(theta[:, :3])
            layer.bias.copy_(theta[:, 3])
        return layer, x, y

    return fit
