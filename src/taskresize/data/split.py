"""Train / validation splits: how many items a random split holds out, and the seed every split uses."""

from __future__ import annotations

from taskresize.errors import DataError

# Random splits never depend on the run's seed, so that runs with different seeds share a validation set.
SPLIT_SEED = 0


def validation_count(total: int, fraction: float) -> int:
    """How many of ``total`` items a random split holds out for validation: ``round(total * fraction)``, at
    least one, and at least one left for training (none when there are fewer than two items).

    Raises:
        DataError: ``fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"--val-split {fraction} must be between 0 and 1 (exclusive)")
    if total < 2:
        return 0
    return min(max(1, round(total * fraction)), total - 1)
