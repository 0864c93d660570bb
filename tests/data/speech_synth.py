"""Test speech from the espeak-ng command line, with exactly known word onsets.

Imported by the preprocessing tests (tests/data/test_{audio,align,utterance,writer}.py).
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import soundfile

ESPEAK_RATE = 22050


def say(text: str, path: str | os.PathLike, *, voice: str = "en", speed: int = 175) -> np.ndarray:
    """Synthesizes ``text`` into a wav (22.05 kHz mono int16); returns float32 samples."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", os.fspath(path), text],
                   check=True, capture_output=True)
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == ESPEAK_RATE
    return samples


def _trim(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return samples[loud[0]:loud[-1] + 1]


def say_words(words: list[str], path: str | os.PathLike, tmp_dir: str | os.PathLike, *, voice: str = "en+f3",
              gaps_s: list[float] | None = None, lead_s: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Speaks each word separately and joins them with known silences.

    Returns (true onset of each word in seconds, true offset). ``gaps_s`` are the
    silences between words (default: alternating 0.05 / 0.15 s).
    """
    gaps_s = gaps_s or [0.05 if i % 2 else 0.15 for i in range(len(words))]
    pieces = [np.zeros(int(lead_s * ESPEAK_RATE), np.float32)]
    onsets, offsets = [], []
    position = len(pieces[0])
    for i, word in enumerate(words):
        audio = _trim(say(word, os.path.join(tmp_dir, f"word{i}.wav"), voice=voice))
        onsets.append(position / ESPEAK_RATE)
        offsets.append((position + len(audio)) / ESPEAK_RATE)
        silence = np.zeros(int(gaps_s[i] * ESPEAK_RATE), np.float32)
        pieces += [audio, silence]
        position += len(audio) + len(silence)
    pieces.append(np.zeros(int(lead_s * ESPEAK_RATE), np.float32))
    soundfile.write(path, np.concatenate(pieces), ESPEAK_RATE, subtype="PCM_16")
    return np.asarray(onsets), np.asarray(offsets)
