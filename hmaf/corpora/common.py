"""What every corpus builder shares: atomic JSONL files, parallel TTS rendering, prepare.

A builder produces ``TTSJob`` s (or, for a real release, manifest rows directly);
:func:`render` turns jobs into ``DIR/source/audio/<speaker>/<id>.wav`` plus manifest and
truth rows; :func:`finish` writes ``manifest.jsonl``/``truth.jsonl`` and optionally runs
``hmaf.data.writer.prepare``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from typing import Any, Sequence

import numpy as np

from hmaf.corpora import engines, tts
from hmaf.data.align import ALIGNERS, BOUNDARIES, DEFAULT_ALIGNER, DEFAULT_BOUNDARIES
from hmaf.data.text import repair_c1
from hmaf.io import atomic_write_text

log = logging.getLogger(__name__)

# A faint white-noise floor so that no file is digital silence (as no recording is).
# Kept well below speech: silence trimming that works relative to the loudest frame
# (e.g. 50 dB below it) must still find the leading and trailing silence of a quiet,
# "sad" utterance.
NOISE_DBFS = -80.0


@dataclasses.dataclass
class TTSJob:
    """One utterance to synthesise.

    fields: manifest fields besides audio/transcript/word_timings (label, speaker, id,
    split, group, and any extra such as ``score``); ``id`` and ``speaker`` are required.
    truth: extra design facts recorded in truth.jsonl beside the true word timings.
    engine: the synthesis engine (:data:`hmaf.corpora.engines.ENGINES`) that speaks it.
    """
    segments: list[tts.Segment]
    voice: str
    fields: dict[str, Any]
    utterance: tts.Prosody | None = None
    truth: dict[str, Any] = dataclasses.field(default_factory=dict)
    engine: str = "espeak"


def sentence_id(text: str) -> str:
    """A stable id of a text: the same words (case and punctuation aside) -> the same id."""
    words = " ".join(tts.transcript_words(tts.clean_text(text))).lower()
    return "sent_" + hashlib.sha1(words.encode("utf-8")).hexdigest()[:12]


def utterance_rows(jobs: Sequence[TTSJob], manifest: Sequence[dict], extra: Sequence[str] = ()
                   ) -> list[dict]:
    """The rows of ``utterances.jsonl`` (one per synthesised utterance, see INTERFACES):
    id, label, speaker, group, engine, voice, sentence, plus the truth fields ``extra``."""
    done = {row["id"] for row in manifest}
    rows = []
    for job in jobs:
        if job.fields["id"] not in done:
            continue
        row = {"id": job.fields["id"], "label": job.fields["label"],
               "speaker": job.fields["speaker"], "group": job.fields.get("group", job.fields["speaker"]),
               "engine": job.engine, "voice": job.voice,
               "sentence": sentence_id(" ".join(s.text if isinstance(s, tts.Segment) else s
                                                for s in job.segments))}
        row.update({k: job.truth[k] for k in extra})
        rows.append(row)
    return rows


def safe_name(text: str) -> str:
    """A file-system-safe form of a speaker or id ("The Interviewer" -> The_Interviewer)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "unknown"


def read_csv_rows(path: str, required: Sequence[str], *, what: str, hint: str,
                  limit: int | None = None) -> list[dict[str, str]]:
    """The first ``limit`` rows of a CSV with a header; ValueError names the file and
    what is wrong (``what``: the kind of file; ``hint``: how to point at another one)."""
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path} not found: {hint}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a{'n' if what[0] in 'AEIOU' else ''} {what} file, "
                             f"missing column(s) {missing}")
        rows = []
        for row in reader:
            if limit is not None and len(rows) >= limit:
                break
            # Windows-1252 read as Latin-1 (MELD's dev CSV: "won\x92t") becomes the text
            # it was, so a TTS engine speaks and a manifest holds the real characters
            rows.append({k: repair_c1(v) if isinstance(v, str) else v for k, v in row.items()})
    return rows


def add_prepare_arguments(parser, *, vocab_extra: int = 0) -> None:
    """The options every corpus builder's CLI passes on to ``hmaf.prepare`` (``vocab_extra``:
    the builder's default for ``--vocab_extra``)."""
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--embeddings", default="glove6b50", help="embedding spec for prepare")
    parser.add_argument("--vocab_extra", type=int, default=vocab_extra, metavar="N",
                        help=f"open vocabulary for prepare: the N most frequent pretrained words join the "
                             f"corpus's (default {vocab_extra})")
    parser.add_argument("--no_prepare", action="store_true",
                        help="only write DIR/source (manifest and audio), do not prepare")
    parser.add_argument("--aligner", default=DEFAULT_ALIGNER, choices=ALIGNERS,
                        help="word aligner for prepare (docs/alignment.md)")
    parser.add_argument("--boundaries", default=DEFAULT_BOUNDARIES, choices=BOUNDARIES,
                        help="where pocketsphinx's word boundaries end up, for prepare (docs/alignment.md)")
    parser.add_argument("--augment", default="",
                        help="waveform augmentation spec for prepare (docs/augmentation.md); default none")


def write_jsonl(path: str, rows: Sequence[dict]) -> None:
    """Writes rows atomically (temp file in the same folder, then rename)."""
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))


def write_json(path: str, obj: Any) -> None:
    """Writes ``obj`` as sorted, indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False))


def _render_one(index: int, job: TTSJob, engine: engines.Engine, source_dir: str, *,
                sample_rate: int, seed: int, word_timings: bool) -> dict:
    # Per-job generator: the result does not depend on which thread renders it.
    rng = np.random.default_rng([seed, index])
    lead, trail = float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.1, 0.3))
    syn = engine.synthesize(job.segments, job.voice, utterance=job.utterance,
                            sample_rate=sample_rate, lead_s=lead, trail_s=trail,
                            noise_dbfs=NOISE_DBFS, seed=int(rng.integers(2**31)))
    speaker_dir = safe_name(job.fields["speaker"])
    rel = os.path.join("audio", speaker_dir, safe_name(job.fields["id"]) + ".wav")
    os.makedirs(os.path.join(source_dir, "audio", speaker_dir), exist_ok=True)
    syn.write_wav(os.path.join(source_dir, rel))
    timings = [[w.word, round(w.start, 5), round(w.end, 5)] for w in syn.words]
    row = {**job.fields, "audio": rel, "transcript": syn.transcript}
    if word_timings and not syn.untimed and not syn.stray:
        row["word_timings"] = timings
    truth = {**job.truth, "id": job.fields["id"], "voice": job.voice, "engine": job.engine,
             "duration": round(syn.duration, 4), "words": timings, "untimed": syn.untimed, "stray": syn.stray}
    return {"manifest": row, "truth": truth, "seconds": syn.duration}


def render(jobs: Sequence[TTSJob], source_dir: str, *, workers: int = 1, sample_rate: int = 16000,
           seed: int = 0, word_timings: bool = False, strict: bool = True) -> dict:
    """Synthesises every job into ``source_dir``.

    Each worker thread drives its own engine processes (espeak server, festival; the
    synthesis runs there, off the GIL), and gets its jobs sorted by engine and voice so
    that festival rarely switches voices. Output order is the job order whatever the
    thread count, and every job's output is independent of the thread that renders it.
    word_timings: also put the true timings into the manifest rows (alignment skipped),
      for utterances whose every word was timed.
    strict: a failed job raises; otherwise it is logged and counted in ``failed``.

    Returns {"manifest": rows, "truth": rows, "failed": [{"id", "error"}],
    "audio_seconds", "synthesis_s"}.
    """
    os.makedirs(source_dir, exist_ok=True)
    pools = [engines.EnginePool() for _ in range(max(1, min(workers, len(jobs) or 1)))]
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].engine, jobs[i].voice, i))
    t0 = time.perf_counter()

    def run(indices: Sequence[int], pool: engines.EnginePool) -> list[tuple[int, dict]]:
        out = []
        for i in indices:
            try:
                out.append((i, _render_one(i, jobs[i], pool.get(jobs[i].engine), source_dir,
                                           sample_rate=sample_rate, seed=seed,
                                           word_timings=word_timings)))
            except tts.TTSError as e:
                if strict:
                    raise
                log.warning("skipped %s: %s", jobs[i].fields["id"], e)
                out.append((i, {"failed": {"id": jobs[i].fields["id"], "error": str(e)}}))
        return out

    try:
        with concurrent.futures.ThreadPoolExecutor(len(pools)) as executor:
            futures = [executor.submit(run, order[k::len(pools)], pool)
                       for k, pool in enumerate(pools)]
            results = sorted((r for f in futures for r in f.result()), key=lambda r: r[0])
    finally:
        for pool in pools:
            pool.close()
    done = [r for _, r in results if "failed" not in r]
    return {"manifest": [r["manifest"] for r in done], "truth": [r["truth"] for r in done],
            "failed": [r["failed"] for _, r in results if "failed" in r],
            "audio_seconds": round(sum(r["seconds"] for r in done), 2),
            "synthesis_s": round(time.perf_counter() - t0, 2)}


def prepare_dir(manifest_path: str, out_dir: str, *, labels: Sequence[str] | None, name: str,
                embeddings: str = "glove6b50", workers: int | None = None, seed: int = 0,
                aligner: str = "auto", augment: str = "", vocab_extra: int = 0,
                boundaries: str = DEFAULT_BOUNDARIES) -> dict:
    """Runs ``hmaf.data.writer.prepare`` on a builder's manifest; returns dataset.json.
    ``aligner``, ``boundaries``, ``augment`` and ``vocab_extra`` are those of ``python -m hmaf.prepare``."""
    from hmaf.data.writer import prepare

    return prepare(manifest_path, out_dir, embeddings=embeddings, num_workers=workers,
                   labels=list(labels) if labels is not None else None, name=name, seed=seed,
                   aligner=aligner, boundaries=boundaries, augment=augment, vocab_extra=vocab_extra)
