"""Choosing among candidates scored on the same splits: the no-skill reference that a
candidate must beat (``reference``), the one selection rule and the bias-corrected
estimate of what it chose (``rule``). Above ``results`` (whose scores it reads), below
``grid`` and ``report`` (which choose with it); the cv stage does not use it, so a change
to the rule re-runs no training."""
