"""Offline speech recognition (pocketsphinx, US English model shipped in its wheel).

Used only for utterances whose manifest row has no transcript; the result is marked
automatic (``transcript_auto=1``) in the prepared records. pocketsphinx is a small
offline recogniser: expect many word errors on noisy or emotional speech, and dropped
words on long utterances.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000

_decoder = None  # one per process: loading the acoustic model and dictionary takes ~0.3 s


class ASRError(Exception):
    """Recognition failed (the decoder raised or heard no words)."""


def _get_decoder():
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        _decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    return _decoder


def transcribe(samples: np.ndarray) -> str:
    """Transcribes English speech.

    Args:
      samples: mono float ``[samples]`` at 16 kHz, nominally in [-1, 1].

    Returns:
      The recognised words as lowercase text separated by spaces.

    Raises:
      ASRError: when the decoder fails or recognises no word.
    """
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    decoder = _get_decoder()
    try:
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
    except RuntimeError as e:
        raise ASRError(f"pocketsphinx failed: {e}") from None
    hypothesis = decoder.hyp()
    text = hypothesis.hypstr.strip() if hypothesis is not None else ""
    if not text:
        raise ASRError("pocketsphinx recognised no words")
    return text
