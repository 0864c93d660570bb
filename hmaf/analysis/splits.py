"""Held-out splits for the generalisation report, from a corpus's ``utterances.jsonl``.

Each split is ``{"train": [ids], "validation": [ids], "test": [ids]}`` of ORIGINAL
utterance ids, the file format of ``config.data.split_mode = "ids"`` (an augmented copy
``X~name`` follows ``X`` into train and is kept out of validation and test by the input
pipeline). Two views:

* leave-one-engine-out (:func:`loeo_splits`): test on every voice of one engine, train
  and validate on the voices of the others (validation = whole voices, so model
  selection is speaker-independent too);
* held-out sentences (:func:`heldout_sentence_splits`): k folds over the sentence ids,
  test on sentences never seen in training or validation; in the strict form the test
  speakers are also disjoint from the training ones (speaker folds paired with the
  sentence folds), which drops the utterances of test speakers with training sentences.

Functions here are pure (rows in, splits and notes out) except for :func:`read_utterances`
and :func:`write_split`; a view the corpus cannot support comes back as a note, not an
error. This module imports numpy only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hmaf.data import folds as folds_lib
from hmaf.io import atomic_write_text

Split = dict[str, list[str]]
REQUIRED = ("id", "label", "group")


class UtterancesError(ValueError):
    """``utterances.jsonl`` is unreadable or lacks a required field."""


def read_utterances(path: str | os.PathLike) -> list[dict]:
    """The rows of ``utterances.jsonl``; errors name the file, the line and the problem."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UtterancesError(f"{path}:{number}: not valid JSON ({e})") from None
            missing = [k for k in REQUIRED if k not in row]
            if missing:
                raise UtterancesError(f"{path}:{number}: lacks the fields {missing}")
            rows.append(row)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise UtterancesError(f"{path}: utterance ids repeat ({len(ids) - len(set(ids))} duplicates)")
    return rows


def engine_of(row: Mapping) -> str:
    """The row's engine: its ``engine`` field, else the prefix of a ``<engine>:<voice>`` group."""
    if row.get("engine"):
        return str(row["engine"])
    group = str(row["group"])
    return group.split(":", 1)[0] if ":" in group else ""


def keep_known(rows: Sequence[Mapping], known_ids: Iterable[str] | None) -> tuple[list[Mapping], int]:
    """The rows whose id is in the prepared corpus (utterances rejected at prepare time
    have no record); returns them and how many were dropped."""
    if known_ids is None:
        return list(rows), 0
    known = set(known_ids)
    kept = [r for r in rows if r["id"] in known]
    return kept, len(rows) - len(kept)


def _ids(rows: Iterable[Mapping]) -> list[str]:
    return sorted(str(r["id"]) for r in rows)


def _empty_splits(split: Split) -> list[str]:
    return [name for name in ("train", "validation", "test") if not split[name]]


def loeo_splits(rows: Sequence[Mapping], *, val_share: float = 0.2, seed: int = 0) -> tuple[dict[str, Split], list[str]]:
    """Leave-one-engine-out: for every engine E, ``"<other engines>_to_<E>"`` -> split.

    Validation is ``val_share`` of the training engines' voices (at least one voice, the
    groups drawn with ``seed``); when the training side has a single voice, validation
    is ``val_share`` of its utterances instead (said in the notes).
    """
    notes: list[str] = []
    by_engine: dict[str, list[Mapping]] = {}
    for row in rows:
        by_engine.setdefault(engine_of(row), []).append(row)
    if "" in by_engine:
        notes.append(f"leave-one-engine-out: {len(by_engine.pop(''))} utterances name no engine (no `engine` "
                     f"field, group not `<engine>:<voice>`); left out of this view")
    engines = sorted(by_engine)
    if len(engines) < 2:
        notes.append(f"leave-one-engine-out needs two or more engines; the corpus has {engines or 'none'}")
        return {}, notes
    splits: dict[str, Split] = {}
    for held_out in engines:
        train_rows = [r for e in engines if e != held_out for r in by_engine[e]]
        groups = sorted({str(r["group"]) for r in train_rows})
        rng = np.random.default_rng([seed, engines.index(held_out)])
        name = f"{'+'.join(e for e in engines if e != held_out)}_to_{held_out}"
        if len(groups) >= 2:
            order = [groups[i] for i in rng.permutation(len(groups))]
            num_val = min(max(int(round(val_share * len(groups))), 1), len(groups) - 1)
            val_groups = set(order[:num_val])
            validation = [r for r in train_rows if r["group"] in val_groups]
            train = [r for r in train_rows if r["group"] not in val_groups]
        else:
            order = rng.permutation(len(train_rows))
            num_val = max(int(round(val_share * len(train_rows))), 1)
            validation = [train_rows[i] for i in order[:num_val]]
            train = [train_rows[i] for i in order[num_val:]]
            notes.append(f"{name}: the training side has one voice ({groups[0]}), so validation is "
                         f"{num_val} of its utterances, not a held-out voice")
        split = {"train": _ids(train), "validation": _ids(validation), "test": _ids(by_engine[held_out])}
        if _empty_splits(split):
            notes.append(f"{name}: skipped, empty {_empty_splits(split)}")
            continue
        splits[name] = split
    return splits, notes


def heldout_sentence_splits(rows: Sequence[Mapping], *, num_folds: int = 3, seed: int = 0,
                            val_share: float = 0.2, disjoint_speakers: bool = True) -> tuple[list[Split], list[str]]:
    """``num_folds`` splits whose test sentences are never in train or validation.

    Sentences (the ``sentence`` field) are dealt into folds as speakers are
    (:func:`hmaf.data.folds.speaker_folds`, with ``val_share`` of the other sentences
    for validation). With ``disjoint_speakers`` the groups are dealt the same way and
    fold i keeps only utterances whose sentence AND group fall in the same split, so
    test speakers and test sentences are both new to the model; the rest is dropped.
    """
    notes: list[str] = []
    with_sentence = [r for r in rows if r.get("sentence") not in (None, "")]
    if not with_sentence:
        return [], ["held-out sentences: utterances.jsonl has no `sentence` field; view skipped"]
    if len(with_sentence) < len(rows):
        notes.append(f"held-out sentences: {len(rows) - len(with_sentence)} utterances without a sentence id left out")
    sentences = sorted({str(r["sentence"]) for r in with_sentence})
    if len(sentences) < num_folds:
        return [], notes + [f"held-out sentences: {len(sentences)} distinct sentences cannot make {num_folds} folds"]
    sentence_folds = folds_lib.speaker_folds(sentences, num_folds, seed, val_share)
    group_folds = None
    if disjoint_speakers:
        groups = sorted({str(r["group"]) for r in with_sentence})
        if len(groups) < num_folds:
            notes.append(f"held-out sentences: {len(groups)} speakers cannot make {num_folds} speaker folds; "
                         f"test sentences are new, test speakers are not")
        else:
            group_folds = folds_lib.speaker_folds(groups, num_folds, seed + 1, val_share)
    splits = []
    for i, sentence_fold in enumerate(sentence_folds):
        split: Split = {}
        for name in ("train", "validation", "test"):
            keep_sentences = set(getattr(sentence_fold, name))
            keep_groups = set(getattr(group_folds[i], name)) if group_folds else None
            split[name] = _ids(r for r in with_sentence if str(r["sentence"]) in keep_sentences
                               and (keep_groups is None or str(r["group"]) in keep_groups))
        if _empty_splits(split):
            notes.append(f"held-out sentences fold {i}: skipped, empty {_empty_splits(split)}")
            continue
        splits.append(split)
    if group_folds:
        used = sum(len(s["train"]) + len(s["validation"]) + len(s["test"]) for s in splits)
        total = len(with_sentence) * len(splits)
        if total:
            notes.append(f"held-out sentences (speakers and sentences disjoint): each fold uses "
                         f"{100 * used / total:.0f}% of the utterances; the rest pair a test speaker with a "
                         f"training sentence or the reverse")
    return splits, notes


def kinds_of(rows: Sequence[Mapping]) -> dict[str, str]:
    """``id -> kind`` for the rows that have one (the embedded corpus's design)."""
    return {str(r["id"]): str(r["kind"]) for r in rows if r.get("kind")}


def write_split(path: str | os.PathLike, split: Split) -> None:
    """Writes a split file atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({k: split[k] for k in ("train", "validation", "test")}, indent=1))
