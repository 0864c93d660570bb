"""Word-alignment accuracy and speed against engine-true word timings.

    python -m benchmarks.alignment [--utterances 60] [--aligners aeneas,pocketsphinx,auto]
        [--engines espeak] [--seed 0] [--out benchmarks/results/alignment.jsonl]

Speech with exact word timings comes from the speech engines of :mod:`hmaf.corpora.engines`
(espeak-ng: libespeak-ng's word events; festival: its utterance structure; Flite, with
``--engines flite``: its utterance structure, an engine held out from all alignment
development). Two sets per engine:

- ``corpus``: utterances of the project's embedded corpus design
  (:func:`hmaf.corpora.synthetic.design`): its voices, emotional deliveries (angry fast
  and loud, sad slow and quiet, ...) and one emphasised word;
- ``unseen``: EMNS sentences (``../shared/data/emns``, else built-in ones: names, numbers,
  punctuation) in voices the corpus does not use (:data:`UNSEEN_VOICES`), each with one of
  the four deliveries, 200 ms of silence around, every third with a -45 dBFS noise floor.

Each utterance goes through :func:`hmaf.data.align.align` with each aligner, on the
transcript's normalised words (:func:`hmaf.data.text.normalize_words`; utterances whose
words do not map one to one onto the engine's are skipped, counted). Reported per aligner
and set: onset and offset error (median, mean, 90th percentile, share within 20 and
50 ms), failures (the aligner raised), and x real time (audio seconds per alignment
second, one warm process); over all cases also the onset errors per engine x word position
and engine x first-phone class with their bias (signed median; :func:`breakdown`). For
``auto`` also the mismatch check
(:mod:`hmaf.data.mismatch`): correct pairs it rejects, and clips it catches when given
the transcript of another utterance of the same engine. Truth conventions (espeak): a word starts at its word event
(a word-initial stop's closure included, and sometimes silence before it); inside a
clause a word ends where the next begins; before a pause it ends with its sound.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.preprocess import machine as benchmark_machine
from hmaf.data.align import BOUNDARIES, DEFAULT_BOUNDARIES

EMNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emns" / "emns_train.csv"
FALLBACK_SENTENCES = (
    "Dr. Smith paid $42 for 3 tickets to the 7:30 show, didn't she?",
    "Well-known author Zoë O'Brien moved to Zürich in 1998.",
    "Honestly, I can't believe the rock'n'roll band cancelled again!",
    "Please call me back before noon tomorrow, it's urgent.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
)
# Voices the embedded corpus does not use (hmaf.corpora.synthetic.VOICES / FESTIVAL_VOICES).
UNSEEN_VOICES = {"espeak": ("en-us", "en-gb-x-rp", "en+f5", "en-us+m5", "en-029", "en-gb-scotland+f1"),
                 "festival": ("kal+p4", "ked+p4", "slt+p4"),
                 "flite": ("kal16+p4", "awb+p4", "rms+p4", "slt+p4")}
ENGINES = ("espeak", "festival")  # hmaf.corpora.engines; the default, and what the aligners were developed on
HELD_OUT_ENGINES = ("flite",)  # measured with --engines flite, never developed on


@dataclasses.dataclass
class Case:
    """One utterance with true word times: 16 kHz float32 audio ``[samples]``."""
    engine: str
    set: str
    voice: str
    delivery: str
    transcript: str
    audio: np.ndarray
    words: list[str]
    starts: np.ndarray
    ends: np.ndarray


def _words_match(transcript_words: list[str], timed: list) -> list[str] | None:
    """The normalised words when they map one to one onto the engine's timed words."""
    from hmaf.data.text import normalize_words

    words = normalize_words(" ".join(transcript_words))
    if len(words) != len(timed):
        return None
    for word, t in zip(words, timed):
        if normalize_words(t.word) != [word]:
            return None
    return words


def _case(engine, set_name: str, segments, voice: str, delivery_name: str, prosody, lead: float,
          noise: float | None, seed: int) -> Case | None:
    synth = engine.synthesize(segments, voice, utterance=prosody, sample_rate=16000, lead_s=lead, trail_s=lead,
                              noise_dbfs=noise, seed=seed)
    if synth.untimed or synth.stray:
        return None
    words = _words_match([w.word for w in synth.words], synth.words)
    if words is None:
        return None
    return Case(engine.name, set_name, voice, delivery_name, synth.transcript, synth.audio, words,
                np.asarray([w.start for w in synth.words]), np.asarray([w.end for w in synth.words]))


def engine_cases(name: str, count: int, seed: int) -> tuple[list[Case], int]:
    """(cases, skipped): ``count`` corpus and ``count`` unseen utterances from engine ``name``."""
    from hmaf.corpora import engines, synthetic

    engine = engines.open_engine(name)
    cases, skipped = [], 0
    try:
        for item in synthetic.design(count, seed=seed, engines=(name,)):
            prosody = synthetic._prosody(item.delivery) if item.delivery else None
            case = _case(engine, "corpus", synthetic.segments(item), item.voice,
                         item.label if item.delivery else "plain", prosody, 0.0, None, seed)
            cases += [case] if case else []
            skipped += case is None
        if EMNS.exists():
            with open(EMNS, encoding="utf-8") as f:
                texts = [row["utterance"] for row in csv.DictReader(f) if row["utterance"].strip()]
        else:
            texts = list(FALLBACK_SENTENCES)
        rng = np.random.default_rng(seed)
        labels = list(synthetic.DELIVERY[name])
        voices = UNSEEN_VOICES[name]
        for i in range(count):
            label = labels[i % len(labels)]
            case = _case(engine, "unseen", texts[int(rng.integers(len(texts)))], voices[i % len(voices)], label,
                         synthetic._prosody(synthetic.DELIVERY[name][label]), 0.2, -45.0 if i % 3 == 2 else None,
                         seed + i)
            cases += [case] if case else []
            skipped += case is None
    finally:
        engine.close()
    return cases, skipped


def _stats(errors_s: list[float]) -> dict:
    signed = 1000 * np.asarray(errors_s, dtype=np.float64)
    e = np.abs(signed)
    if e.size == 0:
        return {}
    return {"signed_median_ms": round(float(np.median(signed)), 1), "median_ms": round(float(np.median(e)), 1), "mean_ms": round(float(np.mean(e)), 1),
            "p90_ms": round(float(np.percentile(e, 90)), 1),
            "within_20ms": round(float(np.mean(e <= 20)), 3), "within_50ms": round(float(np.mean(e <= 50)), 3)}


# Phone classes of a word's first CMU phone: stops and affricates begin with a closure.
PHONE_CLASSES = {"stop": set("P B T D K G CH JH".split()), "fricative": set("F V TH DH S Z SH ZH HH".split()),
                 "nasal": set("M N NG".split()), "approximant": set("L R W Y".split())}
PAUSE_S = 0.02  # a true gap longer than this before a word: the word follows a pause


def word_kinds(case: Case) -> list[tuple[str, str]]:
    """(position, phone class) of each word of ``case``: position "first", "after_pause"
    (a true gap of more than :data:`PAUSE_S`) or "after_word"; phone class of its first
    phone in pocketsphinx's pronunciation (:data:`PHONE_CLASSES`, else "vowel")."""
    from hmaf.data.align_sphinx import pronunciation

    kinds = []
    for i, word in enumerate(case.words):
        position = ("first" if i == 0 else
                    "after_pause" if case.starts[i] - case.ends[i - 1] > PAUSE_S else "after_word")
        phones = pronunciation(word)
        first = phones[0] if phones else ""
        kinds.append((position, next((k for k, v in PHONE_CLASSES.items() if first in v), "vowel")))
    return kinds


def breakdown(per_case: list) -> dict:
    """Onset error statistics (:func:`_stats`, signed median = bias) per engine x word
    position and engine x first-phone class, over the aligned cases of ``per_case``."""
    groups: dict[str, list[float]] = {}
    for case, result, *_ in per_case:
        if result is None:
            continue
        for (position, phone_class), error in zip(word_kinds(case), result.starts - case.starts):
            for key in (f"{case.engine}/position={position}", f"{case.engine}/first_phone={phone_class}"):
                groups.setdefault(key, []).append(float(error))
    return {key: {"words": len(v), **_stats(v)} for key, v in sorted(groups.items())}


def _mismatch(case: Case, words: list[str], aligner: str, boundaries: str, result=None) -> str | None:
    """The rejection :func:`hmaf.data.utterance.preprocess_utterance` would give, or None."""
    from hmaf.data.align import NoPathError, align
    from hmaf.data.mismatch import find_mismatch

    try:
        result = result or align(case.audio, words, aligner=aligner, boundaries=boundaries)
    except NoPathError as e:
        return str(e)
    return find_mismatch(case.audio, words, result)


def run(cases: list[Case], aligner: str, mismatch: bool, boundaries: str = DEFAULT_BOUNDARIES) -> list[dict]:
    """One result per (engine, set) and one over all cases.

    With ``mismatch``: also how many correct pairs the mismatch check rejects, and how
    many clips it catches with the transcript of another utterance of the same engine.
    """
    from hmaf.data import align_sphinx
    from hmaf.data.align import AlignmentError, align

    align(cases[0].audio, cases[0].words, aligner=aligner, boundaries=boundaries)  # warm: imports, model load
    for search in align_sphinx.SEARCHES:  # the retry decoders too (~1 s each to load)
        align_sphinx._decoder(*search)
    per_case = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        try:
            result = align(case.audio, case.words, aligner=aligner, boundaries=boundaries)
        except AlignmentError as e:
            per_case.append((case, None, time.perf_counter() - t0, str(e), None, None))
            continue
        seconds = time.perf_counter() - t0
        rejected = caught = None
        if mismatch:
            rejected = _mismatch(case, case.words, aligner, boundaries, result)
            same = [c for c in cases if c.engine == case.engine and c is not case]
            caught = _mismatch(case, same[(7 * i) % len(same)].words, aligner, boundaries) is not None
        per_case.append((case, result, seconds, "", rejected, caught))
    rows = []
    groups = {(c.engine, c.set) for c in cases}
    for key in sorted(groups) + [("all", "all")]:
        chosen = [p for p in per_case if key == ("all", "all") or (p[0].engine, p[0].set) == key]
        ok = [p for p in chosen if p[1] is not None]
        onsets = [float(x) for c, r, *_ in ok for x in r.starts - c.starts]
        offsets = [float(x) for c, r, *_ in ok for x in r.ends - c.ends]
        audio_s = sum(len(p[0].audio) / 16000 for p in chosen)
        row = {
            "aligner": aligner, "boundaries": boundaries, "engine": key[0], "set": key[1], "utterances": len(chosen),
            "words": len(onsets), "failures": len(chosen) - len(ok),
            "fallbacks": sum(bool(p[1].fallback) for p in ok),
            "onset": _stats(onsets), "offset": _stats(offsets),
            "x_real_time": round(audio_s / max(sum(p[2] for p in chosen), 1e-9), 1),
            "audio_s": round(audio_s, 1),
            "failure_examples": [f"{p[0].voice}/{p[0].delivery}: {p[3][:120]}" for p in chosen if p[1] is None][:3],
        }
        if key == ("all", "all"):
            row["onset_breakdown"] = breakdown(chosen)
        if mismatch:
            row["mismatch"] = {"correct_rejected": sum(p[4] is not None for p in ok),
                               "swapped_caught": sum(bool(p[5]) for p in ok), "pairs": len(ok),
                               "rejected_examples": [f"{p[0].voice}/{p[0].delivery}: {p[4][:120]}"
                                                     for p in ok if p[4] is not None][:3]}
        rows.append(row)
    return rows


def _table(rows: list[dict]) -> str:
    lines = ["| aligner | engine/set | utts | words | on med | on mean | on p90 | on ≤20 | on ≤50 | "
             "off med | off mean | off p90 | off ≤20 | fail | fallback | x RT |", "|" + "---|" * 16]
    for r in rows:
        on, off = r["onset"] or {}, r["offset"] or {}
        lines.append(f"| {r['aligner']} | {r['engine']}/{r['set']} | {r['utterances']} | {r['words']} | "
                     f"{on.get('median_ms')} | {on.get('mean_ms')} | {on.get('p90_ms')} | "
                     f"{on.get('within_20ms', 0):.0%} | {on.get('within_50ms', 0):.0%} | "
                     f"{off.get('median_ms')} | {off.get('mean_ms')} | {off.get('p90_ms')} | "
                     f"{off.get('within_20ms', 0):.0%} | {r['failures']} | {r['fallbacks']} | {r['x_real_time']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from hmaf import cli

    parser = cli.ArgumentParser(prog="python -m benchmarks.alignment", description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=60, help="per set (corpus, unseen) and engine")
    parser.add_argument("--aligners", default="aeneas,pocketsphinx,auto")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_mismatch", action="store_true", help="skip the mismatch check (auto only)")
    parser.add_argument("--boundaries", choices=BOUNDARIES, default=DEFAULT_BOUNDARIES,
                        help=f"where pocketsphinx's word boundaries end up (hmaf.data.align; default {DEFAULT_BOUNDARIES})")
    parser.add_argument("--out", default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    cases, skipped = [], 0
    for engine in args.engines.split(","):
        if engine not in ENGINES + HELD_OUT_ENGINES:
            parser.error(f"unknown engine {engine!r}; have {list(ENGINES + HELD_OUT_ENGINES)}")
        made, lost = engine_cases(engine, args.utterances, args.seed)
        cases += made
        skipped += lost
    print(f"{len(cases)} utterances ({skipped} skipped: words not one to one), "
          f"{sum(len(c.words) for c in cases)} words, {sum(len(c.audio) for c in cases) / 16000:.0f} s", flush=True)
    rows = []
    for aligner in args.aligners.split(","):
        rows += run(cases, aligner, mismatch=aligner == "auto" and not args.no_mismatch, boundaries=args.boundaries)
    print(_table(rows))
    for r in rows:
        if "onset_breakdown" in r:
            print(f"onset errors of {r['aligner']} by word (ms; bias = signed median, + = late):")
            for key, st in r["onset_breakdown"].items():
                print(f"  {key:32s} {st['words']:4d} words  median {st['median_ms']:5.1f}  mean {st['mean_ms']:5.1f}"
                      f"  p90 {st['p90_ms']:6.1f}  <=20 {st['within_20ms']:.0%}  bias {st['signed_median_ms']:+.1f}")
    for r in rows:
        if "mismatch" in r:
            m = r["mismatch"]
            print(f"mismatch check ({r['aligner']}, {r['engine']}/{r['set']}): correct pairs rejected "
                  f"{m['correct_rejected']}/{m['pairs']}, other utterance's transcript caught "
                  f"{m['swapped_caught']}/{m['pairs']} {m['rejected_examples'] or ''}")
    if args.out:
        machine = benchmark_machine()
        with open(args.out, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"benchmark": "alignment", **row, "skipped": skipped,
                                    "machine": machine,
                                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
