"""Hypothesis files: a user's own manifold, layer and claims, in TOML (:mod:`.schema`), and the
judging of each claim against the exact derivation and the measured cases (:mod:`.judging`).

Importing the schema loads neither torch nor sympy: a file is checked before anything heavy
loads.
"""
