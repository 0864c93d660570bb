"""CMU-MOSI raw release (manual download) -> manifest with binary sentiment labels.

Expected layout (``CMU_MOSI_Raw``, as the release and CMU-MultimodalSDK ship it)::

    ROOT/Audio/WAV_16000/Segmented/<video>_<n>.wav
    ROOT/Transcript/Segmented/<video>.annotprocessed     lines "<n>_DELIMITER_<text>"
    ROOT/Labels/OpinionLevelSentiment.csv                no header; rows
        <start>,<end>,<video>,<n>,<score>                score: mean of 5 annotators, -3..+3

Binary labels by the sign of the score (paper §4.1), in both conventions of the
literature (``--convention``): ``has0`` = negative (< 0) vs non-negative (>= 0);
``non0`` = negative vs positive with zero scores dropped (counted). The raw score is kept
in the manifest as ``score``. speaker = group = video id (one speaker per video), so
folds are speaker-independent.
"""

from __future__ import annotations

import collections
import csv
import os
import sys
from typing import Sequence

from hmaf import cli
from hmaf.corpora import common
from hmaf.data.align import DEFAULT_BOUNDARIES

LABELS = ("negative", "positive")
LABELS_HAS0 = ("negative", "non-negative")
CONVENTIONS = ("has0", "non0")
LABEL_FILE = os.path.join("Labels", "OpinionLevelSentiment.csv")
AUDIO_DIR = os.path.join("Audio", "WAV_16000", "Segmented")
TRANSCRIPT_DIR = os.path.join("Transcript", "Segmented")


class LayoutError(ValueError):
    """The root is not a CMU-MOSI raw release (message names what is missing)."""


def check_root(root: str) -> None:
    for rel in (LABEL_FILE, AUDIO_DIR, TRANSCRIPT_DIR):
        if not os.path.exists(os.path.join(root, rel)):
            raise LayoutError(f"{root}: not a CMU-MOSI raw release: {rel} is missing")


def read_scores(path: str) -> list[tuple[str, int, float]]:
    """(video, segment number, score) rows of OpinionLevelSentiment.csv."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                out.append((row[2].strip(), int(row[3]), float(row[4])))
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{i}: expected start,end,video,segment,score; got {row!r}") from None
    return out


def read_transcripts(path: str) -> dict[int, str]:
    """segment number -> text of one ``.annotprocessed`` file."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            number, sep, text = line.strip().partition("_DELIMITER_")
            if sep and number.strip().isdigit():
                out[int(number)] = text.strip()
    return out


def label_of(score: float, convention: str) -> str | None:
    if convention == "has0":
        return "negative" if score < 0 else "non-negative"
    if convention == "non0":
        return None if score == 0 else ("negative" if score < 0 else "positive")
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def manifest_rows(root: str, convention: str = "has0") -> tuple[list[dict], dict]:
    check_root(root)
    rows, skipped = [], collections.Counter()
    transcripts: dict[str, dict[int, str]] = {}
    for video, number, score in read_scores(os.path.join(root, LABEL_FILE)):
        label = label_of(score, convention)
        if label is None:
            skipped["zero_score"] += 1
            continue
        if video not in transcripts:
            path = os.path.join(root, TRANSCRIPT_DIR, video + ".annotprocessed")
            transcripts[video] = read_transcripts(path) if os.path.exists(path) else {}
        wav = os.path.join(root, AUDIO_DIR, f"{video}_{number}.wav")
        if not os.path.exists(wav):
            skipped["no_wav"] += 1
            continue
        text = transcripts[video].get(number)
        if not text:
            skipped["no_transcript"] += 1
            continue
        rows.append({"id": f"{video}_{number}", "audio": os.path.abspath(wav), "transcript": text,
                     "label": label, "speaker": video, "group": video, "score": score})
    return rows, {"kept": len(rows), "skipped": dict(sorted(skipped.items())),
                  "convention": convention}


def build(root: str, out_dir: str, *, convention: str = "has0", prepare: bool = True,
          workers: int | None = None, embeddings: str = "glove6b50", aligner: str = "auto", boundaries: str = DEFAULT_BOUNDARIES, augment: str = "", vocab_extra: int = 0, seed: int = 0) -> dict:
    rows, stats = manifest_rows(root, convention)
    source_dir = os.path.join(out_dir, "source")
    os.makedirs(source_dir, exist_ok=True)
    manifest_path = os.path.join(source_dir, "manifest.jsonl")
    common.write_jsonl(manifest_path, rows)
    common.write_json(os.path.join(source_dir, "summary.json"), stats)
    labels = LABELS_HAS0 if convention == "has0" else LABELS
    dataset = (common.prepare_dir(manifest_path, out_dir, labels=labels, name=f"mosi_{convention}",
                                  embeddings=embeddings, aligner=aligner, boundaries=boundaries, augment=augment, vocab_extra=vocab_extra, workers=workers, seed=seed)
               if prepare else None)
    return {"summary": stats, "dataset": dataset}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.corpora.mosi",
                                     description="CMU-MOSI raw release -> manifest -> prepared corpus")
    parser.add_argument("--root", required=True, help="the CMU_MOSI_Raw folder")
    parser.add_argument("--convention", choices=CONVENTIONS, default="has0")
    parser.add_argument("--out", required=True)
    common.add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = build(args.root, args.out, convention=args.convention, prepare=not args.no_prepare,
                       workers=args.workers, embeddings=args.embeddings, aligner=args.aligner, boundaries=args.boundaries, augment=args.augment, vocab_extra=args.vocab_extra)
    except LayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = result["summary"]
    print(f"MOSI ({args.convention}): kept {s['kept']}, skipped {s['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
