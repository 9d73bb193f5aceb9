"""Choosing the noise scale sigma of Balanced MSE on a balanced validation score (docs/sigma.md).

- :func:`search_sigma`: grid or bracket search over a caller's train-and-score callable, with an
  optional shared warm start (:mod:`.search`);
- :func:`holdout_split`, :func:`validation_score`: the balanced validation split of held-out
  training samples and its balanced score (:mod:`.validation`);
- :mod:`.tasks`: the same search for the pose, age and depth configs (``ihmr tune-sigma``).
"""

from __future__ import annotations

from .search import Candidate, SigmaSearch, check_sigmas, parabolic_step, search_sigma
from .validation import holdout_split, validation_score

__all__ = [
    "Candidate",
    "SigmaSearch",
    "check_sigmas",
    "holdout_split",
    "parabolic_step",
    "search_sigma",
    "validation_score",
]
