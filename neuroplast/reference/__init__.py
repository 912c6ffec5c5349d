"""Exact reference computations (BPTT) that the local learning rules are checked against.

See :mod:`neuroplast.reference.bptt`.  Nothing is imported here, to keep
``neuroplast.plasticity`` and ``neuroplast.reference`` free of import cycles.
"""
