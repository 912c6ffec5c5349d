"""neuroplast: local learning rules for recurrent spiking networks in Brian2, checked against exact BPTT.

The scripting API (:mod:`neuroplast.api`)::

    import neuroplast as npl

    cfg = npl.load_config("models/sine.toml")
    run = npl.train(cfg, "runs/sine.h5", force=True)     # a RunLog
    report = npl.compare(run.path)                        # exact BPTT vs the logged rule

Names: ``load_config``, ``parse_config``, ``train``, ``open_run``, ``compare``, ``analyze``, ``Config``,
``RunLog``, ``Rule``, ``register_rule``, ``NumpySimulator`` and the registries ``RULES``, ``LOSSES``,
``SURROGATES``, ``OPTIMIZERS``, ``TASKS``, ``INITIALIZERS``, ``DEVICES``.  They are imported on first use,
so ``import neuroplast`` itself is instant and a pipeline that only reads logs (``neuroplast.io``) never
loads the trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neuroplast._version import __version__

if TYPE_CHECKING:
    from neuroplast.api import (  # noqa: F401
        DEVICES,
        INITIALIZERS,
        LOSSES,
        NEURONS,
        OPTIMIZERS,
        RULES,
        SURROGATES,
        TASKS,
        Config,
        NeuronModel,
        NumpySimulator,
        Parameter,
        Rule,
        RunLog,
        analyze,
        compare,
        load_config,
        open_run,
        parse_config,
        register_neuron,
        register_rule,
        train,
    )

__all__ = [
    "__version__",
    "DEVICES",
    "INITIALIZERS",
    "LOSSES",
    "NEURONS",
    "OPTIMIZERS",
    "RULES",
    "SURROGATES",
    "TASKS",
    "Config",
    "NeuronModel",
    "NumpySimulator",
    "Parameter",
    "Rule",
    "RunLog",
    "analyze",
    "compare",
    "load_config",
    "open_run",
    "parse_config",
    "register_neuron",
    "register_rule",
    "train",
]


def __getattr__(name: str) -> Any:
    """The scripting API's names, imported from :mod:`neuroplast.api` on first use."""
    if name in __all__:
        from neuroplast import api

        return getattr(api, name)
    raise AttributeError(f"module 'neuroplast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
