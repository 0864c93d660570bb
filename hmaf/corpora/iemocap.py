"""IEMOCAP (manual download) -> manifest, with the paper's majority-agreed labels.

Expected layout (the release as distributed, ``IEMOCAP_full_release``)::

    ROOT/Session{1..5}/sentences/wav/<dialog>/<utt>.wav
    ROOT/Session{1..5}/dialog/transcriptions/<dialog>.txt
        Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    ROOT/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
        C-E2:<TAB>Neutral;<TAB>()
        C-E3:<TAB>Neutral;<TAB>()
        C-F1:<TAB>Neutral;<TAB>(curious)      <- self-evaluation by the actor
        A-E3:<TAB>val 3; act 2; dom  2;<TAB>()
    ROOT/Session{1..5}/sentences/ForcedAlignment/<dialog>/<utt>.wdseg   (optional)
         SFrm  EFrm    SegAScr Word
            0    32     -62541 <s>
           33    50    -324123 EXCUSE(2)
         Total score: ...

Label rule (paper §4.1: "the label agreed on by the majority, at least two of the three
annotators"): the summary line's category (the evaluators' majority; ``xxx`` when there
is none) is kept when at least two categorical evaluator lines (``C-E*``) name it.
Self-evaluation lines of the actors (``C-F*``, ``C-M*``) are not evaluators and are
ignored. Classes: 4 = happy (hap + exc), sad, angry (ang), neutral (neu); 5 = those plus
frustrated (fru). Every other utterance is skipped and counted by reason (``xxx``,
``oth``, ``sur``, ``fea``, ``dis``, ``fru`` in 4-class, ``no_agreement``, ``no_wav``,
``no_transcript``).

speaker = session + actor gender (``Ses01F``); group = session (``Session1``) for
leave-one-session-out folds. With ``--word_timings`` the release's own forced
alignment (``.wdseg``: 10 ms frames; ``<s>``, ``</s>``, ``<sil>`` and ``++noise++``
tokens dropped, ``WORD(2)`` -> ``word``) is put in the manifest, so alignment is skipped.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
from typing import Sequence

from hmaf import cli
from hmaf.corpora import common
from hmaf.data.align import DEFAULT_BOUNDARIES

log = logging.getLogger(__name__)

CATEGORY_CODES = {
    "neutral": "neu", "frustration": "fru", "anger": "ang", "sadness": "sad",
    "happiness": "hap", "excited": "exc", "surprise": "sur", "fear": "fea",
    "disgust": "dis", "other": "oth",
}
CLASS_MAPS = {
    4: {"hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry", "neu": "neutral"},
    5: {"hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry", "neu": "neutral",
        "fru": "frustrated"},
}
LABELS = {4: ("angry", "happy", "sad", "neutral"),
          5: ("angry", "happy", "sad", "neutral", "frustrated")}
SESSIONS = tuple(f"Session{i}" for i in range(1, 6))
WDSEG_FRAME_S = 0.01

_SUMMARY = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[")
_EVALUATOR = re.compile(r"^C-(E\d+):\s*(.*)$")
_TRANSCRIPT = re.compile(r"^(Ses\d\d[FM]_\S+)\s+\[[\d.]+-[\d.]+\]:\s*(.*)$")


class LayoutError(ValueError):
    """The root is not an IEMOCAP release (message names what is missing)."""


def check_root(root: str) -> list[str]:
    """The sessions present under ``root``; raises LayoutError naming what is missing."""
    if not os.path.isdir(root):
        raise LayoutError(f"{root}: no such folder (expected IEMOCAP_full_release)")
    sessions = [s for s in SESSIONS if os.path.isdir(os.path.join(root, s))]
    if not sessions:
        raise LayoutError(f"{root}: not an IEMOCAP release: none of Session1..Session5 found")
    for s in sessions:
        for sub in ("sentences/wav", "dialog/transcriptions", "dialog/EmoEvaluation"):
            if not os.path.isdir(os.path.join(root, s, sub)):
                raise LayoutError(f"{root}: not an IEMOCAP release: {s}/{sub} is missing")
    return sessions


def parse_emo_evaluation(path: str) -> dict[str, dict]:
    """utterance id -> {"category": summary code, "evaluators": [codes per C-E line, as sets]}."""
    out: dict[str, dict] = {}
    current = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = _SUMMARY.match(line)
            if m:
                current = {"category": m.group(4).lower(), "evaluators": [],
                           "start": float(m.group(1)), "end": float(m.group(2))}
                out[m.group(3)] = current
                continue
            m = _EVALUATOR.match(line)
            if m and current is not None:
                names = [n.strip().lower() for n in m.group(2).split("\t")[0].split(";")]
                codes = {CATEGORY_CODES.get(n.split(":")[0].split()[0] if n else "", "oth")
                         for n in names if n}
                current["evaluators"].append(codes)
    return out


def parse_transcriptions(path: str) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = _TRANSCRIPT.match(line.strip())
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def parse_wdseg(path: str) -> list[list]:
    """[word, start_s, end_s] of the real words of a Sphinx ``.wdseg`` file."""
    words = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4 or not parts[0].isdigit():
                continue  # header ("SFrm EFrm ...") and "Total score" lines
            token = parts[3]
            if token.startswith("<") or token.startswith("+"):
                continue  # <s>, </s>, <sil>, ++BREATH++ ...
            word = re.sub(r"\(\d+\)$", "", token).lower()
            words.append([word, int(parts[0]) * WDSEG_FRAME_S, (int(parts[1]) + 1) * WDSEG_FRAME_S])
    return words


def label_of(entry: dict, classes: int) -> tuple[str | None, str | None]:
    """(label, None) when kept, else (None, skip reason) — see the module docstring."""
    category = entry["category"]
    if category not in CLASS_MAPS[classes]:
        return None, category
    agreeing = sum(category in codes for codes in entry["evaluators"])
    if agreeing < 2:
        return None, "no_agreement"
    return CLASS_MAPS[classes][category], None


def manifest_rows(root: str, classes: int = 4, word_timings: bool = False) -> tuple[list[dict], dict]:
    """Manifest rows (sorted by id) and {"skipped": {reason: n}, "kept": n}."""
    if classes not in CLASS_MAPS:
        raise ValueError(f"classes must be 4 or 5, got {classes}")
    rows, skipped = [], collections.Counter()
    for session in check_root(root):
        eval_dir = os.path.join(root, session, "dialog", "EmoEvaluation")
        for name in sorted(os.listdir(eval_dir)):
            if not name.endswith(".txt") or name.startswith("."):
                continue
            dialog = name[:-4]
            labels = parse_emo_evaluation(os.path.join(eval_dir, name))
            transcript_path = os.path.join(root, session, "dialog", "transcriptions", name)
            transcripts = parse_transcriptions(transcript_path) if os.path.exists(transcript_path) else {}
            for utt, entry in sorted(labels.items()):
                label, reason = label_of(entry, classes)
                wav = os.path.join(root, session, "sentences", "wav", dialog, utt + ".wav")
                if reason is None and not os.path.exists(wav):
                    reason = "no_wav"
                if reason is None and not transcripts.get(utt):
                    reason = "no_transcript"
                if reason is not None:
                    skipped[reason] += 1
                    continue
                row = {"id": utt, "audio": os.path.abspath(wav), "transcript": transcripts[utt],
                       "label": label, "speaker": utt[:6], "group": session,
                       "category": entry["category"]}
                wdseg = os.path.join(root, session, "sentences", "ForcedAlignment", dialog, utt + ".wdseg")
                if word_timings and os.path.exists(wdseg):
                    timings = parse_wdseg(wdseg)
                    if timings:
                        row["word_timings"] = timings
                rows.append(row)
    return rows, {"kept": len(rows), "skipped": dict(sorted(skipped.items()))}


def build(root: str, out_dir: str, *, classes: int = 4, word_timings: bool = False,
          prepare: bool = True, workers: int | None = None, embeddings: str = "glove6b50", aligner: str = "auto", boundaries: str = DEFAULT_BOUNDARIES, augment: str = "", vocab_extra: int = 0,
          seed: int = 0) -> dict:
    rows, stats = manifest_rows(root, classes, word_timings)
    source_dir = os.path.join(out_dir, "source")
    os.makedirs(source_dir, exist_ok=True)
    manifest_path = os.path.join(source_dir, "manifest.jsonl")
    common.write_jsonl(manifest_path, rows)
    common.write_json(os.path.join(source_dir, "summary.json"), stats)
    dataset = (common.prepare_dir(manifest_path, out_dir, labels=LABELS[classes],
                                  name=f"iemocap{classes}", embeddings=embeddings, aligner=aligner, boundaries=boundaries, augment=augment,
                                  vocab_extra=vocab_extra, workers=workers, seed=seed) if prepare else None)
    return {"summary": stats, "dataset": dataset}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.corpora.iemocap",
                                     description="IEMOCAP release -> manifest -> prepared corpus")
    parser.add_argument("--root", required=True, help="the IEMOCAP_full_release folder")
    parser.add_argument("--classes", type=int, choices=(4, 5), default=4)
    parser.add_argument("--out", required=True)
    parser.add_argument("--word_timings", action="store_true",
                        help="use the release's ForcedAlignment .wdseg timings (skip alignment)")
    common.add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = build(args.root, args.out, classes=args.classes, word_timings=args.word_timings,
                       prepare=not args.no_prepare, workers=args.workers, embeddings=args.embeddings, aligner=args.aligner, boundaries=args.boundaries, augment=args.augment, vocab_extra=args.vocab_extra)
    except LayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = result["summary"]
    print(f"IEMOCAP {args.classes}-class: kept {s['kept']}, skipped {s['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
