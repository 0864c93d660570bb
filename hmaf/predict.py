"""Command line: a trained model on new recordings.

    python -m hmaf.predict --workdir W --audio x.wav [--text "what is said"] [--json]
    python -m hmaf.predict --workdir W --manifest M [--out predictions.jsonl]

One recording prints the label, the class probabilities (calibrated when the model
has a calibration), a line "unfamiliar input" when the recording is unlike the
training data, and the per-word attentions (t_alpha, w_alpha, s_alpha, u_alpha);
``--json`` prints the same as JSON (with ``calibrated``, ``unfamiliar_score``,
``unfamiliar_kind`` and ``unfamiliar``). Without ``--text`` speech recognition supplies the
words. A manifest (the format of ``hmaf.prepare``, but only ``audio`` is required; a
``label`` is echoed as ``true_label``) gives one JSON line per row; a row that cannot be
processed becomes a line with its ``error`` and the run goes on. A speaker-normalised model
(the default) normalises each row by its speaker's statistics over the manifest's
recordings when the manifest has a ``speaker`` column (``--own_stats``: each recording by
its own); one recording uses its own statistics, or ``--speaker_profile``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Sequence, TextIO

import numpy as np

from hmaf import cli
from hmaf.data import normalize
from hmaf.data.align import ALIGNERS, BOUNDARIES
from hmaf.data.manifest import ManifestError, read_manifest
from hmaf.inference import MOSTLY_UNKNOWN, WORD_ATTENTIONS, Prediction, Predictor, PreprocessError, ProfileError
from hmaf.io import atomic_open


def format_prediction(prediction: Prediction) -> str:
    """A readable report: label, probabilities, one line per word with its attentions."""
    lines = [f"{prediction.audio}: {prediction.label} ({prediction.probabilities[prediction.label]:.3f})",
             "  " + "  ".join(f"{k} {v:.3f}" for k, v in prediction.probabilities.items()),
             f"  transcript{' (ASR)' if prediction.transcript_auto else ''}: {prediction.transcript}"]
    if prediction.unfamiliar:
        lines.append(f"  unfamiliar input: this recording is unlike the training data ({prediction.unfamiliar_kind} "
                     f"score {prediction.unfamiliar_score:.2f} above the threshold set on validation); "
                     f"treat the label with caution")
    if prediction.unknown_words:
        lines.append(f"  not in the training vocabulary: {' '.join(prediction.unknown_words)}")
        if len(prediction.unknown_words) > MOSTLY_UNKNOWN * len(prediction.words):
            lines.append(f"  most words ({len(prediction.unknown_words)} of {len(prediction.words)}) are unknown to the "
                         f"model, which reads them as <unk>: the label rests on the audio and on what <unk> meant in training")
    names = [k for k in WORD_ATTENTIONS if k in prediction.attention]
    width = max(4, *(len(w) for w in prediction.words))
    lines.append("  " + "word".ljust(width) + "  start   end  " + "  ".join(f"{k:>7}" for k in names))
    for i, word in enumerate(prediction.words):
        lines.append(f"  {word.ljust(width)}  {prediction.word_start[i]:5.2f} {prediction.word_end[i]:5.2f}  "
                     + "  ".join(f"{prediction.attention[k][i]:7.3f}" for k in names))
    return "\n".join(lines)


def predict_manifest(predictor: Predictor, manifest: str, out: TextIO, *, frame_attention: bool = False,
                     own_stats: bool = False) -> dict:
    """Writes one JSON line per manifest row (rows the manifest reader rejects first, then
    the rest in the manifest's order); returns counts ``{"predicted", "failed"}``.

    A model with ``audio_norm="speaker"`` and no speaker profile given normalises each
    row by its speaker's statistics over all of that speaker's recordings in the manifest
    (:func:`hmaf.data.normalize.speaker_stats`, as ``hmaf.prepare`` computes them for a
    corpus), so every row is first preprocessed and held in memory (about 0.1 MB per
    4 s recording); rows without a ``speaker``, and every row with ``own_stats``, use
    their own statistics, as one recording does.
    """
    rows, rejects = read_manifest(manifest, labelled=False)
    counts = {"predicted": 0, "failed": 0}
    for reject in rejects:
        out.write(json.dumps({"id": reject.id, "audio": reject.audio, "error": reject.reason,
                              "detail": reject.detail}) + "\n")
        counts["failed"] += 1
    by_speaker = (getattr(predictor.model, "audio_norm", None) == "speaker" and predictor.speaker_profile is None
                  and not own_stats and any(row.speaker for row in rows))
    prepared = []  # by speaker: (row, utterance or the row's error line), written after all are read
    for row in rows:
        try:
            utterance = predictor.preprocess(row.audio, row.transcript, word_timings=row.word_timings)
        except PreprocessError as e:
            logging.warning("skipping %s: %s", row.id, e)
            line = json.dumps({"id": row.id, "audio": row.audio, "error": e.reason, "detail": e.detail}) + "\n"
            if by_speaker:
                prepared.append((row, line))
            else:
                out.write(line)
            counts["failed"] += 1
            continue
        if by_speaker:
            prepared.append((row, utterance))
        else:
            _write_prediction(predictor, row, utterance, None, out, frame_attention)
            counts["predicted"] += 1
    if by_speaker:
        stats = normalize.speaker_stats((row.speaker, "", np.concatenate(utterance.frames))
                                        for row, utterance in prepared if row.speaker and not isinstance(utterance, str))
        logging.info("speaker statistics from the manifest's recordings: %s",
                     ", ".join(f"{k} ({v['frames']} frames)" for k, v in stats.items()))
        for row, utterance in prepared:
            if isinstance(utterance, str):  # the row's error line
                out.write(utterance)
                continue
            entry = stats.get(row.speaker)
            profile = None if entry is None else tuple(np.asarray(entry[k], np.float32) for k in ("mean", "std"))
            _write_prediction(predictor, row, utterance, profile, out, frame_attention)
            counts["predicted"] += 1
    return counts


def _write_prediction(predictor: Predictor, row, utterance, profile, out: TextIO, frame_attention: bool) -> None:
    prediction = predictor.predict_utterances([utterance], frame_attention=frame_attention, audio=[row.audio],
                                              speaker_profile=profile)[0]
    out.write(json.dumps({"id": row.id, "true_label": row.label or None, **prediction.to_dict()}) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a trained workdir (hmaf.train / hmaf.experiment)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio", help="one recording (any format ffmpeg reads)")
    source.add_argument("--manifest", help="JSONL/CSV manifest for batch prediction")
    parser.add_argument("--text", default=None, help="what is said (default: speech recognition)")
    parser.add_argument("--stage", default=None, help="text, audio or fusion (default: the last trained)")
    parser.add_argument("--aligner", choices=ALIGNERS, default=None,
                        help="word aligner (default: the one the training corpus was prepared with)")
    parser.add_argument("--boundaries", choices=BOUNDARIES, default=None,
                        help="where pocketsphinx's word boundaries end up, hmm or signal (default: the training "
                             "corpus's; docs/alignment.md)")
    parser.add_argument("--speaker_profile", default=None,
                        help="the speaker's band statistics for audio_norm=speaker models: a profile JSON or a "
                             "speaker_stats.json (python -m hmaf.data.normalize; default: each recording's own)")
    parser.add_argument("--speaker", default=None, help="the speaker to take from a --speaker_profile speaker_stats.json")
    parser.add_argument("--own_stats", action="store_true",
                        help="with --manifest: each recording normalised by its own statistics, not by its "
                             "speaker's over the manifest's recordings")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--frames", action="store_true", help="also give the frame-level attention f_alpha")
    parser.add_argument("--out", default=None, help="with --manifest: write JSONL here (default: stdout)")
    args = parser.parse_args(argv)
    if args.own_stats and args.speaker_profile:
        parser.error("--own_stats and --speaker_profile exclude each other: a profile gives every recording "
                     "the statistics of one speaker")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    try:
        profile = normalize.load_profile(args.speaker_profile, args.speaker) if args.speaker_profile else None
    except (OSError, ValueError) as e:
        print(f"error: --speaker_profile: {e}", file=sys.stderr)
        return 2
    try:
        predictor = Predictor.from_workdir(args.workdir, args.stage, aligner=args.aligner,
                                           boundaries=args.boundaries, speaker_profile=profile)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ProfileError as e:
        print(f"error: --speaker_profile {args.speaker_profile}: {e}", file=sys.stderr)
        return 2
    if args.manifest:
        try:
            if args.out:
                with atomic_open(args.out, "w") as f:
                    counts = predict_manifest(predictor, args.manifest, f, frame_attention=args.frames,
                                              own_stats=args.own_stats)
            else:
                counts = predict_manifest(predictor, args.manifest, sys.stdout, frame_attention=args.frames,
                                          own_stats=args.own_stats)
        except ManifestError as e:  # the manifest as a whole is unreadable
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{counts['predicted']} predicted, {counts['failed']} failed", file=sys.stderr)
        return 0 if counts["predicted"] else 1
    try:
        prediction = predictor(args.audio, args.text, frame_attention=args.frames)
    except PreprocessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(prediction.to_json() if args.json else format_prediction(prediction))
    return 0


if __name__ == "__main__":
    sys.exit(main())
