"""Paths for models: how a model and its data become a
:class:`~llcgeo.numerics.paths.problem.Problem`: the posterior every kernel samples (a loss and
its gradient over flat parameter vectors, a centre, a mask), what the path knows exactly about
that loss and what a run of it costs the plan. The general path takes any ``nn.Module``
(:mod:`~llcgeo.numerics.paths.module`); the fast paths (linear, product, softmax head, stacked
MLP) give its numbers faster, and :mod:`~llcgeo.numerics.paths.choose` says which one a model
takes. Beside them: the forms data may take, the named losses, the masks of weight refinement,
the check of a model against its data, the Hessian spectrum of a problem and preconditioned
coordinates. A path knows no sampler: it imports from :mod:`llcgeo.numerics.sampling` only its
types, and never from :mod:`llcgeo.numerics.measurements`."""
