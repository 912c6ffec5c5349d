"""A third-party neuroplast rule: e-prop with sign-concordant feedback.

B_jk = feedback_scale · |W_out,kj|_mean · sign(W_out,kj): the learning signal knows
which way each readout weight points but not how strong it is (Liao et al. 2016).
Registered through the ``neuroplast.rules`` entry point in this package's pyproject.
"""

from __future__ import annotations

import numpy as np

from neuroplast.plasticity.rules import Rule


class SignFeedbackEprop(Rule):
    """e-prop whose feedback is the sign of W_outᵀ times its mean magnitude."""

    name = "eprop-sign"
    description = "e-prop, sign-concordant feedback (example plugin)"

    def feedback(self, weights, b):
        w = weights.w_out.T
        mag = np.mean(np.abs(w)) if w.size else 0.0
        return self.training.feedback_scale * mag * np.sign(w)
