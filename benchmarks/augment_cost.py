"""Cost of each waveform augmentation (hmaf.data.augment), in x real time, on espeak-ng speech.

    python -m benchmarks.augment_cost [--utterances 6] [--repeats 3] [--out FILE.jsonl]

Synthesizes a few sentences (espeak-ng, several voices), then times, per augmentation step,
:func:`hmaf.data.augment.apply_augment` on the 16 kHz waveform (babble includes decoding its
4 source files). For scale, the same for the log-mel features every copy also pays. One
process, one core; prints one JSON line per step: seconds of audio per second of work.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import numpy as np

from hmaf import cli

SENTENCES = ["I really did not expect to see you here today",
             "this is the worst day of my life and nobody cares",
             "what a lovely surprise to find the garden in bloom",
             "leave me alone right now I do not want to talk",
             "we won the final game after a long hard season",
             "the train was late again so I walked all the way home"]
VOICES = ["en+m1", "en+f2", "en+m3", "en+f4", "en+m5", "en+f1"]
STEPS = ["noise:white:snr=10", "noise:pink:snr=10", "noise:babble:snr=10", "reverb:rt60=0.5",
         "reverb:rt60=0.8", "telephone", "gain:db=3", "speed:0.9", "speed:1.1"]


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from hmaf.data import augment, features
    from hmaf.data.audio import load_audio

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(args.utterances):
            path = os.path.join(folder, f"u{i}.wav")
            subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-w", path, SENTENCES[i % len(SENTENCES)]],
                           check=True, capture_output=True)
            paths.append(path)
        waves = [load_audio(p) for p in paths]
        seconds = sum(w.size for w in waves) / features.SAMPLE_RATE
        features.frame_features(waves[0])  # warm-up (FFT plans, filterbank)
        lines = []

        def timed(name: str, fn) -> None:
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for i, wave in enumerate(waves):
                    fn(i, wave)
                best = min(best, time.perf_counter() - t0)
            lines.append({"step": name, "audio_s": round(seconds, 2), "work_s": round(best, 4),
                          "x_real_time": round(seconds / best, 1)})

        timed("features (log-mel and prosody columns, for scale)", lambda i, w: features.frame_features(w))
        for text in STEPS:
            def run(i: int, wave: np.ndarray, text: str = text) -> None:
                pool = [os.path.basename(p) for j, p in enumerate(paths) if j != i]
                (item,) = augment.parse_augment(text)
                augment.apply_augment(wave, augment.resolve(item, 0, f"u{i}", pool), folder)
            timed(text, run)
    out = "\n".join(json.dumps(line) for line in lines)
    print(out)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
