"""The SGLD settings, re-exported: they live in :mod:`llcgeo.config`, which needs no torch, so
that a hypothesis file or a CLI flag is validated before torch loads."""

from llcgeo.config import DTYPES, SGLDConfig

__all__ = ["DTYPES", "SGLDConfig"]
