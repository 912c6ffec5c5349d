"""Gradient estimators of one trial, pure NumPy: eligibility traces, e-prop, exact BPTT.

* :mod:`neuroplast.gradients.trial` — :class:`~neuroplast.gradients.trial.TrialData`, the one trial every
  estimator takes (with its derived arrays computed once);
* :mod:`neuroplast.gradients.eligibility` — ∂h_t/∂W forward in time (the per-synapse recursion);
* :mod:`neuroplast.gradients.eprop` — e-prop's estimate Σ_t L_t ē_t (literal and factorized forms);
* :mod:`neuroplast.gradients.bptt` — the exact gradient, the ideal learning signal and its decomposition.
"""
