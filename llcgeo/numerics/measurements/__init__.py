"""The suites' measurements and the data they draw: points on each manifold family
(:mod:`~llcgeo.numerics.measurements.manifold_data`), teacher-student linear layers, deep linear
networks, LayerNorm geometry, isometry, Lipschitz constants, and the small trained networks
(their models, training, heads and the coupled measurement beside their quadratic model). It
stands above the estimate and imports from every other room; nothing there imports from it."""
