"""A third-party neuron model for neuroplast: resonate-and-fire (Izhikevich 2001, Neural Netw. 14:883).

Its subthreshold state (x, y) is a damped rotation: the membrane x rings at a preferred frequency after an
input, so the neuron fires for inputs that arrive in step with its oscillation.  In discrete time, with
ρ_r = exp(−dt/τ_res) and θ the rotation per step::

    x_t = ρ_r (cos θ x_{t−1} − sin θ y_{t−1}) + c_t − v_th z_{t−1}
    y_t = ρ_r (sin θ x_{t−1} + cos θ y_{t−1})
    u_t = x_t − v_th

Written once, here; neuroplast derives the rest (the Brian2 statements, e-prop's eligibility, exact BPTT
and RTRL).  Registered through the ``neuroplast.neurons`` entry point in this package's pyproject; its
config keys ``network.tau_res_ms`` and ``network.res_theta`` are accepted when ``network.neuron =
"resonate"``.
"""

from __future__ import annotations

from neuroplast.model.neurons import NeuronModel, Parameter

RESONATE = NeuronModel(
    "resonate",
    "resonate-and-fire: a damped oscillation (x, y) of the membrane, reset by subtraction (example plugin)",
    state=("x", "y"),
    step=(
        ("x_prev", "x"),
        ("x", "rho_r * (cos(theta) * x - sin(theta) * y) + c - R(v_th * z)"),
        ("y", "rho_r * (sin(theta) * x_prev + cos(theta) * y)"),
    ),
    threshold="x - v_th",
    parameters=(
        Parameter("rho_r", "damping exp(−dt/τ_res) per step", "tau_res_ms", 20.0, decay=True),
        Parameter("theta", "rotation per step (rad): 2π f dt for a resonance at f", "res_theta", 0.2),
    ),
    references=("Izhikevich 2001, Neural Netw. 14:883 (resonate-and-fire neurons)",),
)
