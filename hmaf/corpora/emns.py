"""EMNS: real sentences, real emotion labels and real word emphasis, spoken by TTS engines.

The EMNS corpus (Noriy et al. 2023, CC BY 4.0; OpenSLR SLR136) gives, per utterance, the
text, one of 7 emotions (anger, disgust, happiness, neutral, sadness, sarcastic,
surprise) and, in ``description``, the words the speaker emphasised, in braces:
``"{transcription} said {user_id} in a {emotion} voice. Placing emphasis on {all} and
{acts regularly}."`` (``{transcription}``, ``{user_id}``, ``{emotion}`` are template
placeholders, not emphasis).

``python -m hmaf.corpora.emns --out DIR`` synthesises every sentence (``--limit N``:
the first N rows) with the emotion's utterance-level delivery and a word-level emphasis
(higher, slower, louder) on exactly the named words, over several voices of the
``--engines`` (espeak-ng by default; speaker = group = ``"<engine>:<voice>"``), then
prepares DIR. The true word timings go to
DIR/source/truth.jsonl (and into the manifest with ``--word_timings``).

With the original recordings (``--recordings DIR``), no synthesis: each row is matched
to the file whose name stem equals the stem of its ``file`` column
(``recorded_audio_wC6dAsG.wav`` -> any ``recorded_audio_wC6dAsG.*`` anywhere under DIR,
e.g. the ``.webm`` files of SLR136's ``cleaned_webm.tar.xz`` or ``raw_webm.tar.xz``,
which ffmpeg decodes). Rows without a file are counted and skipped. The corpus has one
speaker, so the manifest carries a deterministic 80/10/10 train/validation/test split
by utterance id instead of speaker groups.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import zlib
from typing import Sequence

import numpy as np

from hmaf import cli
from hmaf.corpora import common, engines, tts
from hmaf.data.align import DEFAULT_BOUNDARIES

log = logging.getLogger(__name__)

# The project's copy of the EMNS text and labels lives beside the repository, in
# shared/data (not packaged); --metadata points anywhere else, e.g. SLR136's metadata.csv.
DEFAULT_METADATA = os.path.normpath(os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "emns", "emns_train.csv"))
EMOTIONS = ("anger", "disgust", "happiness", "neutral", "sadness", "sarcastic", "surprise")
REQUIRED_COLUMNS = ("id", "utterance", "description", "emotion")
PLACEHOLDERS = frozenset({"transcription", "user_id", "emotion"})
DEFAULT_VOICES = ("en+f1", "en+f2", "en+f3", "en+f4")  # espeak-ng
FESTIVAL_VOICES = ("kal", "ked", "slt")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
AUDIO_SUFFIXES = (".wav", ".webm", ".flac", ".mp3", ".ogg", ".m4a")

# Utterance-level delivery per emotion: (pitch %, pitch range %, rate %, volume %).
DELIVERY = {
    "anger": (10.0, 70.0, 125.0, 55.0),
    "disgust": (-12.0, 30.0, 85.0, 10.0),
    "happiness": (30.0, 50.0, 110.0, 15.0),
    "neutral": (0.0, 0.0, 100.0, 0.0),
    "sadness": (-25.0, -50.0, 75.0, -35.0),
    "sarcastic": (8.0, 80.0, 85.0, 0.0),
    "surprise": (45.0, 80.0, 105.0, 20.0),
}
DELIVERY_JITTER = (5.0, 8.0, 5.0, 6.0)
EMPHASIS = tts.Prosody(pitch="+45%", rate="75%", volume="+60%")


def emphasized_phrases(description: str) -> list[str]:
    """The phrases in braces of an EMNS description, template placeholders excluded."""
    return [p.strip() for p in re.findall(r"\{([^{}]*)\}", description)
            if p.strip() and p.strip() not in PLACEHOLDERS]


def emphasis_spans(text: str, phrases: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Character spans of each phrase in ``text`` (case-insensitive, whole words).

    Each phrase takes its first occurrence not overlapping an earlier phrase's span.
    Returns (sorted spans, phrases not found).
    """
    spans: list[tuple[int, int]] = []
    missing = []
    for phrase in phrases:
        pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE)
        for m in pattern.finditer(text):
            if all(m.end() <= a or m.start() >= b for a, b in spans):
                spans.append((m.start(), m.end()))
                break
        else:
            missing.append(phrase)
    return sorted(spans), missing


def emphasis_segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tts.Segment]:
    """``text`` as TTS segments, the spans delivered with :data:`EMPHASIS`."""
    segments, pos = [], 0
    for a, b in spans:
        if text[pos:a].strip():
            segments.append(tts.Segment(text[pos:a].strip()))
        segments.append(tts.Segment(text[a:b], prosody=EMPHASIS))
        pos = b
    if text[pos:].strip():
        segments.append(tts.Segment(text[pos:].strip()))
    return segments


def read_metadata(path: str, limit: int | None = None) -> list[dict[str, str]]:
    """Rows of the EMNS metadata CSV (file order); raises ValueError naming what is wrong."""
    return common.read_csv_rows(path, REQUIRED_COLUMNS, what="EMNS metadata", limit=limit,
                                hint="pass --metadata (e.g. SLR136's metadata.csv)")


def _split_of(utt_id: str) -> str:
    bucket = zlib.crc32(utt_id.encode()) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def speaker_voices(engine_names: Sequence[str] = ("espeak",),
                   voices: Sequence[str] = DEFAULT_VOICES) -> list[tuple[str, str]]:
    """(engine, voice) of each speaker: ``voices`` for espeak-ng, :data:`FESTIVAL_VOICES`
    for festival, :data:`FLITE_VOICES` for flite, interleaved so that rows alternate
    between the engines."""
    table = {"espeak": tuple(voices), "festival": FESTIVAL_VOICES, "flite": FLITE_VOICES}
    per_engine = [[(e, v) for v in table[e]] for e in engine_names]
    out = []
    for k in range(max(len(v) for v in per_engine)):
        out += [v[k] for v in per_engine if k < len(v)]
    return out


def synthesized_jobs(rows: Sequence[dict[str, str]], voices: Sequence[str] = DEFAULT_VOICES,
                     seed: int = 0, engine_names: Sequence[str] = ("espeak",)
                     ) -> tuple[list[common.TTSJob], dict]:
    """TTS jobs for EMNS rows; returns (jobs, stats with skipped rows and unmatched phrases).

    Row i is spoken by speaker i mod n of :func:`speaker_voices`; speaker = group =
    ``"<engine>:<voice>"``. Both engines take the same delivery table (:data:`DELIVERY`).
    """
    speakers = speaker_voices(engine_names, voices)
    rng = np.random.default_rng(seed)
    jobs, stats = [], {"skipped": {}, "phrases": 0, "phrases_not_found": 0}
    for i, row in enumerate(rows):
        emotion = row["emotion"].strip().lower()
        text = tts.clean_text(row["utterance"])
        jitter = rng.standard_normal(4)  # drawn for every row: a skip never shifts the rest
        if emotion not in DELIVERY:
            stats["skipped"]["unknown_emotion"] = stats["skipped"].get("unknown_emotion", 0) + 1
            continue
        if not tts.transcript_words(text):
            stats["skipped"]["empty_text"] = stats["skipped"].get("empty_text", 0) + 1
            continue
        phrases = emphasized_phrases(row["description"])
        spans, missing = emphasis_spans(text, phrases)
        stats["phrases"] += len(phrases)
        stats["phrases_not_found"] += len(missing)
        engine, voice = speakers[i % len(speakers)]
        speaker = engines.group_of(engine, voice)
        pitch, rng_, rate, volume = (m + s * j for m, s, j in
                                     zip(DELIVERY[emotion], DELIVERY_JITTER, jitter))
        utt_id = f"emns{row['id']}"
        jobs.append(common.TTSJob(
            segments=emphasis_segments(text, spans), voice=voice, engine=engine,
            utterance=tts.Prosody(pitch=f"{pitch:+.0f}%", range=f"{rng_:+.0f}%",
                                  rate=f"{rate:.0f}%", volume=f"{volume:+.0f}%"),
            fields={"id": utt_id, "label": emotion, "speaker": speaker, "group": speaker,
                    "split": _split_of(utt_id)},
            truth={"emphasis": [text[a:b] for a, b in spans], "emphasis_not_found": missing}))
    return jobs, stats


def recording_rows(rows: Sequence[dict[str, str]], recordings: str) -> tuple[list[dict], dict]:
    """Manifest rows pointing at the user's original EMNS audio (see module docstring)."""
    if not os.path.isdir(recordings):
        raise ValueError(f"--recordings {recordings}: not a folder")
    index: dict[str, str] = {}
    for folder, _, files in os.walk(recordings):
        for name in sorted(files):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in AUDIO_SUFFIXES:
                index.setdefault(stem, os.path.abspath(os.path.join(folder, name)))
    if rows and "file" not in rows[0]:
        raise ValueError("the metadata has no 'file' column to match recordings with")
    out, stats = [], {"skipped": {}}
    for row in rows:
        emotion = row["emotion"].strip().lower()
        path = index.get(os.path.splitext(os.path.basename(row.get("file", "")))[0])
        reason = ("unknown_emotion" if emotion not in EMOTIONS else
                  "no_recording" if path is None else None)
        if reason:
            stats["skipped"][reason] = stats["skipped"].get(reason, 0) + 1
            continue
        speaker = f"emns_speaker{row.get('speaker', '') or '0'}"
        utt_id = f"emns{row['id']}"
        out.append({"id": utt_id, "audio": path, "transcript": row["utterance"], "label": emotion,
                    "speaker": speaker, "group": speaker, "split": _split_of(utt_id)})
    if not out:
        raise ValueError(f"no EMNS recording found under {recordings} (files are matched by the "
                         "stem of the metadata's 'file' column, e.g. recorded_audio_wC6dAsG.webm)")
    return out, stats


def build(out_dir: str, *, metadata: str = DEFAULT_METADATA, limit: int | None = None,
          voices: Sequence[str] = DEFAULT_VOICES, recordings: str | None = None,
          word_timings: bool = False, workers: int | None = None, seed: int = 0,
          embeddings: str = "glove6b50", aligner: str = "auto", boundaries: str = DEFAULT_BOUNDARIES, augment: str = "", vocab_extra: int = 0, prepare: bool = True,
          engine_names: Sequence[str] = ("espeak",)) -> dict:
    """Writes DIR/source (manifest, audio or links to recordings, truth), DIR/utterances.jsonl
    (engine "recording" for the original audio) and prepares DIR."""
    workers = workers or os.cpu_count() or 1
    rows = read_metadata(metadata, limit)
    source_dir = os.path.join(out_dir, "source")
    os.makedirs(source_dir, exist_ok=True)
    if recordings:
        manifest, stats = recording_rows(rows, recordings)
        # The original speaker's recordings: engine "recording", the speaker is the voice.
        common.write_jsonl(os.path.join(out_dir, "utterances.jsonl"), [
            {"id": r["id"], "label": r["label"], "speaker": r["speaker"], "group": r["group"],
             "engine": "recording", "voice": r["speaker"],
             "sentence": common.sentence_id(r["transcript"])} for r in manifest])
    else:
        jobs, stats = synthesized_jobs(rows, voices, seed, engine_names)
        rendered = common.render(jobs, source_dir, workers=workers, seed=seed,
                                 word_timings=word_timings, strict=False)
        manifest = rendered["manifest"]
        common.write_jsonl(os.path.join(out_dir, "utterances.jsonl"),
                           common.utterance_rows(jobs, manifest))
        common.write_jsonl(os.path.join(source_dir, "truth.jsonl"), rendered["truth"])
        stats["synthesis_failed"] = rendered["failed"]
        stats["audio_seconds"] = rendered["audio_seconds"]
        stats["untimed_utterances"] = sum(bool(t["untimed"]) for t in rendered["truth"])
    stats["num_utterances"] = len(manifest)
    manifest_path = os.path.join(source_dir, "manifest.jsonl")
    common.write_jsonl(manifest_path, manifest)
    common.write_json(os.path.join(source_dir, "summary.json"), stats)
    dataset = (common.prepare_dir(manifest_path, out_dir, labels=EMOTIONS, name="emns",
                                  embeddings=embeddings, aligner=aligner, boundaries=boundaries, augment=augment, vocab_extra=vocab_extra, workers=workers, seed=seed)
               if prepare else None)
    return {"summary": stats, "dataset": dataset}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.corpora.emns", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder (prepared corpus)")
    parser.add_argument("--metadata", default=DEFAULT_METADATA, help="EMNS metadata CSV")
    parser.add_argument("--limit", type=int, default=None, help="use the first N rows only")
    parser.add_argument("--voices", default=",".join(DEFAULT_VOICES),
                        help="comma-separated espeak-ng voices (speakers)")
    parser.add_argument("--engines", default="espeak",
                        help="comma-separated synthesis engines: espeak, festival (voices "
                             + ", ".join(FESTIVAL_VOICES) + "), flite (voices "
                             + ", ".join(FLITE_VOICES) + ")")
    parser.add_argument("--recordings", default=None,
                        help="folder with the original EMNS audio: use it instead of synthesis")
    parser.add_argument("--word_timings", action="store_true",
                        help="put the true TTS word timings in the manifest (skip alignment)")
    parser.add_argument("--seed", type=int, default=0)
    common.add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = build(args.out, metadata=args.metadata, limit=args.limit,
                   voices=[v.strip() for v in args.voices.split(",") if v.strip()],
                   recordings=args.recordings, word_timings=args.word_timings,
                   workers=args.workers, seed=args.seed, embeddings=args.embeddings, aligner=args.aligner, boundaries=args.boundaries, augment=args.augment, vocab_extra=args.vocab_extra,
                   prepare=not args.no_prepare, engine_names=engines.parse_engines(args.engines))
    s = result["summary"]
    print(f"EMNS: {s['num_utterances']} utterances, skipped {s['skipped']}"
          + (f", emphasised phrases not found {s['phrases_not_found']}/{s['phrases']}"
             if "phrases" in s else ""))
    if result["dataset"] is not None:
        print(f"prepared {result['dataset']['num_examples']} examples into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
