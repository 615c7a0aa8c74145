"""The sampling core: each sampler an ``init``/``build`` pair over positions ``(chains, P)``
(:data:`~llcgeo.numerics.sampling.kernels.KERNELS`: SGLD, MALA, RMSProp), the Metropolis
log-ratio, the affine driver of SGLD on an exact quadratic, and the convergence and divergence
diagnostics of a loss trace. It knows no model and no path: a kernel sees a drift function and
a mask, and nothing here imports from :mod:`llcgeo.numerics.paths` or
:mod:`llcgeo.numerics.measurements`."""
