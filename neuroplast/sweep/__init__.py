"""Sweeps over seeds and config keys on Dask (``neuroplast sweep``, ``neuroplast sweep-report``).

``spec`` (the sweep file and its expansion into named points, pure), ``manifest`` (``sweep.json``),
``worker`` (one point: an ordinary run inside a Dask worker), ``driver`` (the cluster and the manifest),
``report`` (the table and the figures), ``commands`` (the two subcommands).  Dask is imported only when a
sweep runs, so the rest of neuroplast works without it.
"""
