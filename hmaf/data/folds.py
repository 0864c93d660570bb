"""Speaker-independent splits: k-fold cross-validation over groups (speakers or sessions).

Every example of a group lands in the same split, so no speaker is both trained on and
tested on. With ``num_folds`` folds every group is tested exactly once; within a fold,
about ``val_share`` of the remaining groups are held out for validation (model selection
and early stopping) and the rest train. This module imports numpy only.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

SPLITS = ("train", "validation", "test")

# Names manifests use for their splits, mapped to the three split names of hmaf.
_MANIFEST_NAMES = {
    "train": "train", "training": "train",
    "dev": "validation", "development": "validation", "validation": "validation",
    "valid": "validation", "val": "validation",
    "test": "test", "testing": "test",
}


class Fold(NamedTuple):
    """The groups of one fold, each a sorted tuple; unpacks as (train, validation, test)."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def speaker_folds(groups: Sequence[str], num_folds: int = 5, seed: int = 0,
                  val_share: float = 0.2) -> list[Fold]:
    """Splits groups into ``num_folds`` speaker-independent folds.

    The distinct groups are shuffled with ``seed`` and dealt round-robin into
    ``num_folds`` test sets (sizes differ by at most one). In fold i, the groups not
    tested are shuffled again (seed and i) and ``round(val_share * remaining)`` of them,
    at least one when ``val_share > 0`` and at least two remain, become validation.

    Args:
      groups: group names; repeats are allowed (e.g. one entry per example) and ignored.
      num_folds: k of k-fold, >= 2.
      seed: the shuffle seed; the same groups and seed give the same folds.
      val_share: share of the non-test groups held out for validation, in [0, 1).

    Raises:
      ValueError: fewer distinct groups than folds, or a bad ``num_folds``/``val_share``.
    """
    distinct = sorted(set(groups))
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    if not 0.0 <= val_share < 1.0:
        raise ValueError(f"val_share must be in [0, 1), got {val_share}")
    if len(distinct) < num_folds:
        raise ValueError(
            f"{len(distinct)} groups ({distinct}) cannot make {num_folds} speaker-independent "
            f"folds: use num_folds <= {len(distinct)} or split_mode='manifest'")
    order = np.random.default_rng(seed).permutation(len(distinct))
    shuffled = [distinct[i] for i in order]
    folds = []
    for i in range(num_folds):
        test = shuffled[i::num_folds]
        tested = set(test)
        rest = [g for g in distinct if g not in tested]
        rest = [rest[j] for j in np.random.default_rng([seed, i]).permutation(len(rest))]
        num_val = int(round(val_share * len(rest)))
        if val_share > 0 and len(rest) >= 2:
            num_val = min(max(num_val, 1), len(rest) - 1)
        folds.append(Fold(train=tuple(sorted(rest[num_val:])), validation=tuple(sorted(rest[:num_val])),
                          test=tuple(sorted(test))))
    return folds


def manifest_split_name(name: str) -> str:
    """Maps a manifest's split name (train, dev/val/validation, test, any case) to one of
    :data:`SPLITS`; raises ValueError for other names."""
    key = name.strip().lower()
    if key not in _MANIFEST_NAMES:
        raise ValueError(f"unknown split name {name!r}; expected one of {sorted(_MANIFEST_NAMES)}")
    return _MANIFEST_NAMES[key]


def manifest_splits(split_names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Groups the raw split names a corpus uses under the three hmaf splits.

    E.g. ``["train", "dev", "test"]`` -> ``{"train": ("train",), "validation": ("dev",),
    "test": ("test",)}``. An empty name (an example without a split) raises ValueError,
    since manifest mode needs every example assigned.
    """
    out: dict[str, list[str]] = {split: [] for split in SPLITS}
    for raw in sorted(set(split_names)):
        if not raw:
            raise ValueError("some examples have no split; split_mode='manifest' needs a split on every example")
        out[manifest_split_name(raw)].append(raw)
    return {split: tuple(names) for split, names in out.items()}
