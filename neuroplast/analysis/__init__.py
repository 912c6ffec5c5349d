"""Analysis of run logs: exact-gradient comparison (:func:`compare_run`), metrics and figures.

* :mod:`neuroplast.analysis.metrics` — cosine, relative error, sign agreement, norm ratio (pure NumPy);
* :mod:`neuroplast.analysis.compare` — replay every trial with the NumPy reference, write exact BPTT and
  its factorization parts into the file, compare every logged estimator against it;
* :mod:`neuroplast.analysis.plots` — PNG figures (loss, gradient alignment, factorization, raster);
* :mod:`neuroplast.analysis.views` — a log's edge vectors as dense (post × pre) matrices;
* :mod:`neuroplast.analysis.analyze` — where and why a rule departs from BPTT (time-resolved gap, per-neuron
  signal quality, counterfactual rules of :mod:`neuroplast.analysis.counterfactual`, updates over training).
"""

from neuroplast.analysis.analyze import analyze_run
from neuroplast.analysis.compare import compare_run
from neuroplast.analysis.metrics import (
    all_metrics,
    cosine_similarity,
    norm_ratio,
    relative_error,
    sign_agreement,
)

__all__ = [
    "analyze_run",
    "compare_run",
    "all_metrics",
    "cosine_similarity",
    "norm_ratio",
    "relative_error",
    "sign_agreement",
]
