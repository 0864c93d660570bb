"""Preprocessing speed: seconds of audio per wall-clock second ("x real time").

    python -m benchmarks.preprocess [--utterances 40] [--workers 2] [--out FILE.jsonl]

Synthesizes ``--utterances`` espeak-ng utterances (EMNS sentences from
``../shared/data/emns`` when present, else built-in sentences; several voices), then measures

- parts, serially in one warm process: ``decode`` (:func:`hmaf.data.audio.load_audio` of the
  22.05 kHz wavs, resampling included), ``align`` (:func:`hmaf.data.align.align`, the default aligner),
  ``features`` (:func:`hmaf.data.features.frame_features`, log-mel bands and prosody
  columns, + per-word frames), ``write`` (serialize + TFRecord write, TensorFlow
  already imported);
- ``pipeline``: ``python -m hmaf.prepare`` end to end into a fresh folder with
  ``--workers`` processes (and with 1), as a user runs it: process start-up and exit,
  worker imports, TensorFlow import, embeddings and shard writing included; with the
  CPU seconds of its whole process tree (``cpu_s``, ``x_realtime_per_cpu_s``);
  ``pipeline_phase1``: the preprocessing phase alone (pool start-up included);
  ``pipeline_steady``: the per-utterance work (decode + align + features seconds summed
  over utterances) divided by the workers, i.e. the rate once start-up is paid.

Every figure is one JSON line (stdout, and appended to ``--out``) naming the machine
(platform, CPU model, cpu count) and the 1-minute load average when it ran: other
processes on the machine slow every figure.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hmaf import cli

VOICES = ("en+m1", "en+f2", "en+m3", "en+f4", "en-us", "en+m7")
FALLBACK_SENTENCES = (
    "I really did not expect to see you here today",
    "the meeting went on for much longer than anybody wanted",
    "please put the blue box on the kitchen table",
    "we are going to miss the last train home tonight",
    "nobody told me that the shop would be closed on sunday",
)
EMNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emns" / "emns_train.csv"


def machine() -> dict:
    """The machine a benchmark ran on: platform, Python, CPU model, cores, 1-minute load."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def _sentences(n: int) -> list[str]:
    if EMNS.exists():
        with open(EMNS, encoding="utf-8") as f:
            texts = [row["utterance"] for row in csv.DictReader(f) if row["utterance"].strip()]
    else:
        texts = list(FALLBACK_SENTENCES)
    return [texts[i % len(texts)] for i in range(n)]


def synthesize_corpus(folder: Path, n: int) -> tuple[Path, list[tuple[Path, str]]]:
    """Writes n wavs and a JSONL manifest; returns (manifest, [(wav, transcript)])."""
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    items = []
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for i, text in enumerate(_sentences(n)):
            voice = VOICES[i % len(VOICES)]
            wav = folder / "wav" / f"u{i:03d}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
            items.append((wav, text))
            manifest.write(json.dumps({"audio": f"wav/{wav.name}", "transcript": text,
                                       "label": ("neutral", "happy", "sad")[i % 3], "speaker": voice}) + "\n")
    return folder / "manifest.jsonl", items


def _line(part: str, audio_s: float, wall_s: float, **extra) -> dict:
    return {"benchmark": "preprocess", "part": part, "audio_s": round(audio_s, 2), "wall_s": round(wall_s, 3),
            "x_realtime": round(audio_s / wall_s, 1), **extra}


def measure_parts(items: list[tuple[Path, str]], out_dir: Path) -> list[dict]:
    """Serial per-part throughput in this (warmed-up) process."""
    from hmaf.data import features
    from hmaf.data.align import align
    from hmaf.data.audio import load_audio
    from hmaf.data.text import normalize_words
    from hmaf.data.pool import warm_up as _warm_up

    _warm_up()
    t = time.perf_counter()
    decoded = [load_audio(wav) for wav, _ in items]
    decode_s = time.perf_counter() - t
    audio_s = sum(x.size for x in decoded) / 16000
    words = [normalize_words(text) for _, text in items]
    align(decoded[0], words[0])  # first call pays the aeneas imports and model loads
    t = time.perf_counter()
    spans = [(a.starts, a.ends) for a in (align(x, w) for x, w in zip(decoded, words))]
    align_s = time.perf_counter() - t
    t = time.perf_counter()
    frames = [features.word_frames(features.frame_features(x), s, e, 100)[0] for x, (s, e) in zip(decoded, spans)]
    features_s = time.perf_counter() - t

    import tensorflow as tf

    from hmaf.data.records import serialize_example

    t = time.perf_counter()
    with tf.io.TFRecordWriter(str(out_dir / "parts.tfrecord")) as writer:
        for i, (w, f, (s, e)) in enumerate(zip(words, frames, spans)):
            writer.write(serialize_example(utt_id=f"u{i}", speaker="s", label=0, label_name="x", words=w,
                                           frames=f, word_start=s, word_end=e))
    write_s = time.perf_counter() - t
    return [_line("decode", audio_s, decode_s), _line("align", audio_s, align_s),
            _line("features", audio_s, features_s), _line("write", audio_s, write_s),
            _line("parts_sum_serial", audio_s, decode_s + align_s + features_s + write_s)]


def measure_pipeline(manifest: Path, out_dir: Path, workers: int, embeddings: str) -> list[dict]:
    """prepare() end to end in a fresh python process, as `python -m hmaf.prepare` runs."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "hmaf.prepare", "--manifest", str(manifest), "--out", str(out_dir),
           "--workers", str(workers), "--embeddings", embeddings, "--no_progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    wall_s = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the whole process tree (prepare, its workers, their synthesis children):
    # unlike wall time, barely changed by other load on the machine.
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    info = json.loads((out_dir / "dataset.json").read_text())
    timing = info["timing"]
    audio_s = info["audio_seconds"]
    return [
        _line("pipeline", audio_s, wall_s, workers=workers, examples=info["num_examples"], embeddings=embeddings,
              cpu_s=round(cpu_s, 2), x_realtime_per_cpu_s=round(audio_s / cpu_s, 1)),
        _line("pipeline_phase1", audio_s, timing["phase1_wall_s"], workers=workers,
              note="pool start-up + worker imports + all utterances"),
        # the per-utterance work spread over the workers: the rate once start-up is paid
        _line("pipeline_steady", audio_s,
              (timing["decode_s"] + timing["align_s"] + timing["features_s"]) / workers, workers=workers,
              note="sum of per-utterance decode+align+features seconds / workers"),
        {"benchmark": "preprocess", "part": "pipeline_breakdown", "workers": workers,
         "process_s": round(wall_s, 3), "prepare_s": timing["total_wall_s"], "phase1_wall_s": timing["phase1_wall_s"],
         "write_s": timing["write_s"], "cpu_decode_s": timing["decode_s"], "cpu_align_s": timing["align_s"],
         "cpu_features_s": timing["features_s"]},
    ]


def main() -> None:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--embeddings", default="glove6b50")
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    parser.add_argument("--keep", default=None, help="folder to keep the corpus in (default: a temp folder)")
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hmaf-bench-"))
    machine_info = machine()
    t = time.perf_counter()
    manifest, items = synthesize_corpus(folder, args.utterances)
    lines = [{"benchmark": "preprocess", "part": "synthesize_corpus", "utterances": len(items),
              "wall_s": round(time.perf_counter() - t, 2)}]
    lines += measure_parts(items, folder)
    for workers in sorted({1, args.workers}):
        lines += measure_pipeline(manifest, folder / f"prepared-{workers}", workers, args.embeddings)
    for line in lines:
        line.update(machine=machine_info, load_avg_1m=round(os.getloadavg()[0], 2))
        print(json.dumps(line))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    print(f"\nload average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print("part                 workers  audio_s   wall_s  x_realtime    cpu_s  x_per_cpu_s")
    for line in lines:
        if "x_realtime" in line:
            print(f"{line['part']:<20} {line.get('workers', 1):>7} {line['audio_s']:>8} {line['wall_s']:>8} "
                  f"{line['x_realtime']:>10} {line.get('cpu_s', ''):>8} {line.get('x_realtime_per_cpu_s', ''):>12}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
