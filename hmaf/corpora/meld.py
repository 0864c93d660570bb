"""MELD text spoken by espeak-ng and/or festival: conversational utterances with emotion/sentiment labels.

MELD (Poria et al. 2019, CC BY 4.0) gives utterances from the TV series Friends with a
speaker, one of 7 emotions (anger, disgust, fear, joy, neutral, sadness, surprise) and
one of 3 sentiments (negative, neutral, positive). The project has the train and dev
CSVs (text only); MELD's test split is not given, so:

* ``meld_train.csv`` -> ``train`` and ``validation``: a dialogue goes to validation when
  crc32 of its id is 0 mod 10 (about 10%), the same whatever ``--limit`` or row order;
* ``meld_dev.csv`` -> ``test``.

``python -m hmaf.corpora.meld --out DIR --task sentiment|emotion [--limit N]``
synthesises each utterance with the utterance-level delivery of its *emotion* (also for
the sentiment task: the delivery is the emotion's, the label the sentiment), one voice
per speaker (``--engines``: a stable hash of the name picks the engine; main characters
have fixed voices; others are drawn from a pool by the ``gender`` column, by a stable
hash of the name: minor characters may share a voice), then prepares DIR. speaker = the
MELD speaker name, group = ``"<engine>:<voice>"``. ``--limit N`` keeps
the first N rows of each CSV. MELD names no emphasised words, so there is no word-level
emphasis here.
"""

from __future__ import annotations

import logging
import os
import sys
import zlib
from typing import Sequence

import numpy as np

from hmaf import cli
from hmaf.corpora import common, engines, tts
from hmaf.data.align import DEFAULT_BOUNDARIES

log = logging.getLogger(__name__)

DEFAULT_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                            "shared", "data", "meld"))
EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")
TASKS = {"emotion": EMOTIONS, "sentiment": SENTIMENTS}
REQUIRED_COLUMNS = ("Utterance", "speaker", "emotion", "sentiment", "Dialogue_ID", "Utterance_ID")
MAIN_VOICES = {"Chandler": "en+m1", "Joey": "en+m2", "Ross": "en+m3", "Monica": "en+f1",
               "Phoebe": "en+f2", "Rachel": "en+f3"}
POOLS = {"female": ("en+f4", "en-us+f2", "en-us+f5"),
         "male": ("en+m4", "en+m5", "en+m7", "en-us+m3", "en-us+m6"),
         "": ("en", "en+m4", "en+f4", "en-us+m3", "en-us+f2")}
# festival: the six main characters get their own voice; the rest share pools.
FESTIVAL_MAIN_VOICES = {"Chandler": "kal", "Joey": "ked", "Ross": "kal+p2", "Monica": "slt",
                        "Phoebe": "slt+p1", "Rachel": "slt+p3"}
FESTIVAL_POOLS = {"female": ("slt+p2", "slt+p4"), "male": ("kal+p1", "ked+p1", "ked+p2"),
                  "": ("kal+p3", "ked+p3", "slt+p2")}
# Flite: the same scheme over its voices (kal16, awb, rms male; slt female).
FLITE_MAIN_VOICES = {"Chandler": "kal16", "Joey": "awb", "Ross": "rms", "Monica": "slt",
                     "Phoebe": "slt+p1", "Rachel": "slt+p3"}
FLITE_POOLS = {"female": ("slt+p2", "slt+p4"), "male": ("kal16+p1", "awb+p1", "rms+p1"),
               "": ("kal16+p3", "rms+p3", "slt+p2")}
ENGINE_VOICES = {"espeak": (MAIN_VOICES, POOLS), "festival": (FESTIVAL_MAIN_VOICES, FESTIVAL_POOLS),
                 "flite": (FLITE_MAIN_VOICES, FLITE_POOLS)}
DELIVERY = {  # (pitch %, pitch range %, rate %, volume %)
    "anger": (10.0, 70.0, 125.0, 55.0),
    "disgust": (-12.0, 30.0, 85.0, 10.0),
    "fear": (20.0, -20.0, 120.0, -10.0),
    "joy": (30.0, 50.0, 110.0, 15.0),
    "neutral": (0.0, 0.0, 100.0, 0.0),
    "sadness": (-25.0, -50.0, 75.0, -35.0),
    "surprise": (45.0, 80.0, 105.0, 20.0),
}
DELIVERY_JITTER = (5.0, 8.0, 5.0, 6.0)


def voice_for(speaker: str, gender: str, engine: str = "espeak") -> str:
    """A deterministic voice of ``engine`` for a MELD speaker."""
    main, pools = ENGINE_VOICES[engine]
    if speaker in main:
        return main[speaker]
    pool = pools.get(gender.strip().lower(), pools[""])
    return pool[zlib.crc32(speaker.encode()) % len(pool)]


def engine_for(speaker: str, engine_names: Sequence[str]) -> str:
    """The engine that speaks a MELD speaker: a stable hash of the name picks one."""
    return engine_names[zlib.crc32(("engine:" + speaker).encode()) % len(engine_names)]


def split_of(source: str, dialogue_id: str) -> str:
    """train/validation/test of a row (see the module docstring)."""
    if source == "dev":
        return "test"
    return "validation" if zlib.crc32(dialogue_id.strip().encode()) % 10 == 0 else "train"


def read_csv(path: str, limit: int | None = None) -> list[dict[str, str]]:
    return common.read_csv_rows(path, REQUIRED_COLUMNS, what="MELD CSV", limit=limit,
                                hint="pass --data DIR holding meld_train.csv and meld_dev.csv")


def jobs_for(rows_by_source: dict[str, list[dict[str, str]]], task: str, seed: int = 0,
             engine_names: Sequence[str] = ("espeak",)) -> tuple[list[common.TTSJob], dict]:
    """TTS jobs; speaker = the MELD name, group = ``"<engine>:<voice>"`` (speakers sharing
    a voice share a group, so folds are independent of the voice actually heard)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    rng = np.random.default_rng(seed)
    jobs, skipped = [], {}
    for source in ("train", "dev"):
        for row in rows_by_source.get(source, []):
            jitter = rng.standard_normal(4)  # drawn for every row: a skip never shifts the rest
            emotion, label = row["emotion"].strip().lower(), row[task].strip().lower()
            text = tts.clean_text(row["Utterance"])
            reason = ("unknown_label" if label not in TASKS[task] or emotion not in DELIVERY else
                      "empty_text" if not tts.transcript_words(text) else None)
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            speaker = row["speaker"].strip() or "unknown"
            pitch, rng_, rate, volume = (m + s * j for m, s, j in
                                         zip(DELIVERY[emotion], DELIVERY_JITTER, jitter))
            utt_id = f"{source}_dia{row['Dialogue_ID'].strip()}_utt{row['Utterance_ID'].strip()}"
            engine = engine_for(speaker, engine_names)
            voice = voice_for(speaker, row.get("gender", "") or "", engine)
            jobs.append(common.TTSJob(
                segments=[tts.Segment(text)], voice=voice, engine=engine,
                utterance=tts.Prosody(pitch=f"{pitch:+.0f}%", range=f"{rng_:+.0f}%",
                                      rate=f"{rate:.0f}%", volume=f"{volume:+.0f}%"),
                fields={"id": utt_id, "label": label, "speaker": speaker,
                        "group": engines.group_of(engine, voice),
                        "split": split_of(source, row["Dialogue_ID"])},
                truth={"emotion": emotion, "sentiment": row["sentiment"].strip().lower()}))
    return jobs, {"skipped": skipped}


def build(out_dir: str, *, task: str = "sentiment", data_dir: str = DEFAULT_DIR,
          limit: int | None = None, word_timings: bool = False, workers: int | None = None,
          seed: int = 0, embeddings: str = "glove6b50", aligner: str = "auto", boundaries: str = DEFAULT_BOUNDARIES, augment: str = "", vocab_extra: int = 0, prepare: bool = True,
          engine_names: Sequence[str] = ("espeak",)) -> dict:
    workers = workers or os.cpu_count() or 1
    rows = {source: read_csv(os.path.join(data_dir, f"meld_{source}.csv"), limit)
            for source in ("train", "dev")}
    jobs, stats = jobs_for(rows, task, seed, engine_names)
    source_dir = os.path.join(out_dir, "source")
    rendered = common.render(jobs, source_dir, workers=workers, seed=seed,
                             word_timings=word_timings, strict=False)
    common.write_jsonl(os.path.join(out_dir, "utterances.jsonl"),
                       common.utterance_rows(jobs, rendered["manifest"]))
    manifest_path = os.path.join(source_dir, "manifest.jsonl")
    common.write_jsonl(manifest_path, rendered["manifest"])
    common.write_jsonl(os.path.join(source_dir, "truth.jsonl"), rendered["truth"])
    stats.update(num_utterances=len(rendered["manifest"]), synthesis_failed=rendered["failed"],
                 audio_seconds=rendered["audio_seconds"], task=task,
                 splits={s: sum(r["split"] == s for r in rendered["manifest"])
                         for s in ("train", "validation", "test")})
    common.write_json(os.path.join(source_dir, "summary.json"), stats)
    dataset = (common.prepare_dir(manifest_path, out_dir, labels=TASKS[task], name=f"meld_{task}",
                                  embeddings=embeddings, aligner=aligner, boundaries=boundaries, augment=augment, vocab_extra=vocab_extra, workers=workers, seed=seed)
               if prepare else None)
    return {"summary": stats, "dataset": dataset}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.corpora.meld",
                                     description="MELD text spoken by espeak-ng -> prepared corpus")
    parser.add_argument("--out", required=True)
    parser.add_argument("--task", choices=tuple(TASKS), default="sentiment")
    parser.add_argument("--data", default=DEFAULT_DIR, help="folder with meld_train.csv, meld_dev.csv")
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each CSV")
    parser.add_argument("--word_timings", action="store_true",
                        help="put the true TTS word timings in the manifest (skip alignment)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default="espeak",
                        help="comma-separated synthesis engines: espeak, festival, flite")
    common.add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = build(args.out, task=args.task, data_dir=args.data, limit=args.limit,
                   word_timings=args.word_timings, workers=args.workers, seed=args.seed,
                   embeddings=args.embeddings, aligner=args.aligner, boundaries=args.boundaries, augment=args.augment, vocab_extra=args.vocab_extra, prepare=not args.no_prepare,
                   engine_names=engines.parse_engines(args.engines))
    s = result["summary"]
    print(f"MELD {args.task}: {s['num_utterances']} utterances {s['splits']}, skipped {s['skipped']}, "
          f"synthesis failed {len(s['synthesis_failed'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
