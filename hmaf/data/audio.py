"""Audio loading: any file soundfile or ffmpeg reads -> mono float32 samples at 16 kHz.

soundfile (libsndfile) reads wav/flac/ogg/mp3 in-process; anything it rejects (m4a,
webm, odd wav codecs, ...) is decoded by an ``ffmpeg`` subprocess straight to 16 kHz
mono float32. Multi-channel audio is averaged to mono; other rates are resampled with
soxr at "HQ" quality to ``ceil(n * 16000 / rate)`` samples, exactly what
``librosa.resample(res_type="soxr_hq")`` does, without librosa's ~1-4 s import.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np
import soundfile

SAMPLE_RATE = 16000

# ffmpeg decodes at least 100x real time; this only stops a wedged decoder.
_FFMPEG_TIMEOUT_S = 600


class AudioError(Exception):
    """An audio file that cannot be used; ``reason`` is "missing", "unreadable" or "empty"."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    """Returns samples ``[frames, channels]`` float32 and the file's sample rate."""
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data, int(rate)


def _read_ffmpeg(path: str, sample_rate: int) -> np.ndarray:
    """Decodes with ffmpeg to mono float32 at ``sample_rate``: ``[samples]``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, "unreadable", "soundfile cannot read it and ffmpeg is not installed")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", path,
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(sample_rate), "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(path, "unreadable", f"ffmpeg did not finish within {_FFMPEG_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(path, "unreadable", f"ffmpeg failed: {message[-1] if message else proc.returncode}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr "HQ"): ``[n]`` -> float32 ``[ceil(n * target_rate / rate)]``."""
    import soxr  # deferred: only needed for input at another rate

    out = soxr.resample(np.asarray(samples, dtype=np.float32), rate, target_rate, quality="HQ")
    size = math.ceil(samples.shape[0] * target_rate / rate)
    if out.shape[0] < size:
        out = np.pad(out, (0, size - out.shape[0]))
    return out[:size].astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Loads an audio file as mono float32 samples at ``sample_rate``.

    Args:
      path: wav/flac/ogg/mp3 or anything else ffmpeg decodes; any rate, any channels.
      sample_rate: the output rate in Hz.

    Returns:
      float32 ``[samples]``, nominally in [-1, 1].

    Raises:
      AudioError: naming the file, with reason "missing" (no such file), "unreadable"
        (neither soundfile nor ffmpeg decodes it) or "empty" (it holds no samples).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(path, "missing", "no such file")
    try:
        data, rate = _read_soundfile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as sf_error:
        try:
            samples = _read_ffmpeg(path, sample_rate)
        except AudioError as ff_error:
            raise AudioError(path, "unreadable", f"soundfile: {sf_error}; {ff_error.detail}") from None
    else:
        samples = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        if rate != sample_rate and samples.size:
            samples = resample(samples, rate, sample_rate)
    if samples.size == 0:
        raise AudioError(path, "empty", "the file holds no audio samples")
    return np.ascontiguousarray(samples, dtype=np.float32)
