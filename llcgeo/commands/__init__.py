"""One module per ``llcgeo`` sub-command; see :mod:`llcgeo.cli`."""
