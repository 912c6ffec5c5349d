"""Training: :class:`~neuroplast.training.trainer.Trainer` (one iteration at a time on a simulator) and
:func:`~neuroplast.training.runner.run_training` (``neuroplast run``: the loop that hands every iteration
to the run log).  The only layer that uses both the network and the run log."""
