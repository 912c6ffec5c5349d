"""The stopping criterion of classification runs (``training.stop_error``, ``training.stop_window``).

The reference experiments train "until the error falls below 7 %" (Bellec et al. 2020, evidence
accumulation). Here the error is measured on the training trials themselves — each iteration draws new
trials, so an iteration's trials are unseen by the weights they run with — pooled over the trials of the
last ``window`` iterations, and the criterion is met after iteration n (counted from 1) when n ≥ ``window``
and that pooled error is below ``stop_error``. This module owns the rule: the runner stops on it, and the
analyses (``iterations_to_criterion``) count iterations with it, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["criterion_met", "iterations_to_criterion", "window_error"]


def window_error(correct: Sequence[np.ndarray], window: int) -> float | None:
    """Error (fraction of wrong trials) pooled over the last ``window`` iterations.

    Parameters
    ----------
    correct : sequence of ndarray
        One array per completed iteration, in order: 1 for a trial answered correctly, 0 otherwise.
    window : int
        Iterations pooled (≥ 1).

    Returns
    -------
    float or None
        The pooled error in [0, 1], or ``None`` while fewer than ``window`` iterations are complete.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 (got {window})")
    if len(correct) < window:
        return None
    last = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in correct[-window:]])
    if last.size == 0:
        return None
    # wrong / all, not 1 − mean: 8 wrong of 80 is exactly 0.1 (1 − 0.9 is 0.09999999999999998)
    return float((last.size - last.sum()) / last.size)


def criterion_met(correct: Sequence[np.ndarray], stop_error: float, window: int) -> bool:
    """Whether training stops after the iterations in ``correct`` (see the module docstring).

    ``stop_error`` = 0 switches the criterion off (never met).
    """
    if stop_error <= 0:
        return False
    err = window_error(correct, window)
    return err is not None and err < stop_error


def iterations_to_criterion(
    iteration: np.ndarray, accuracy: np.ndarray, stop_error: float, window: int
) -> int | None:
    """The number of iterations after which the criterion was first met, from a run's trial table.

    Parameters
    ----------
    iteration : ndarray (n_trials,)
        Iteration index of each trial (0-based, non-decreasing: a run log's ``trials/iteration``).
    accuracy : ndarray (n_trials,)
        1 for a correct trial, 0 otherwise (``trials/accuracy``).
    stop_error : float
        Error threshold in (0, 1).
    window : int
        Iterations pooled.

    Returns
    -------
    int or None
        n (≥ ``window``) such that the criterion holds after the first n iterations and not before;
        ``None`` if it never does within the trials given.
    """
    iteration = np.asarray(iteration, dtype=np.int64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if iteration.shape != accuracy.shape:
        raise ValueError(f"iteration {iteration.shape} and accuracy {accuracy.shape} differ in shape")
    its, starts = np.unique(iteration, return_index=True)
    groups = np.split(accuracy, starts[1:])
    for n in range(window, len(its) + 1):
        if criterion_met(groups[:n], stop_error, window):
            return n
    return None
