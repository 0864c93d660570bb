"""Transcripts that cannot be what was said: measured after alignment, rejected as ``alignment_mismatch``.

An aligner returns times even for a 100-word transcript on a 3-second clip or for the
transcript of another utterance; the words' frames would then be wrong. The measures,
each with a limit chosen on correct pairs (the alignment benchmark's speech, corpus
designs and unseen voices, ``python -m benchmarks.alignment``; docs/alignment.md) so that
none of them is rejected, with a margin:

- **speaking rate**: words per second of speech (from the first to the last frame within
  50 dB of the loudest) outside :data:`WORDS_PER_S`. Human speech runs at about
  1.5-5 words/s; the benchmark's correct pairs ranged from 1.1 to 4.9.
- **fit** (pocketsphinx only, ``Alignment.fit``): the share of the speech that the
  alignment explains with words rather than silence or noise segments, below
  :data:`MIN_FIT`. Correct pairs: at least 0.66; transcripts of other utterances: mostly
  below (and a third of them have no alignment at all, which
  :func:`hmaf.data.utterance.preprocess_utterance` rejects the same way). aeneas has no
  such measure: with ``--aligner aeneas`` only the rate and squeezed words are checked.
- **squeezed words**: more than :data:`MAX_SQUEEZED_SHARE` of the words (of at least
  three) at most :data:`SQUEEZED_S` long: the aligner had no room for them.
"""

from __future__ import annotations

import numpy as np

from hmaf.data.align import SAMPLE_RATE, Alignment, speech_span

WORDS_PER_S = (0.4, 8.0)
MIN_FIT = 0.5
SQUEEZED_S = 0.02
MAX_SQUEEZED_SHARE = 0.5
SPEECH_TOP_DB = 50.0


def measures(samples: np.ndarray, words: list[str], alignment: Alignment) -> dict[str, float]:
    """words_per_s, squeezed_share and (where the aligner measures it) fit."""
    begin, end = speech_span(samples, SAMPLE_RATE, SPEECH_TOP_DB)
    out = {"words_per_s": len(words) / (max(end - begin, 1) / SAMPLE_RATE),
           "squeezed_share": float(np.mean(alignment.ends - alignment.starts <= SQUEEZED_S + 1e-9))}
    if alignment.fit is not None:
        out["fit"] = alignment.fit
    return out


def find_mismatch(samples: np.ndarray, words: list[str], alignment: Alignment) -> str | None:
    """Why the transcript cannot be what ``samples`` say (the measure and its limit), or None.

    Args:
      samples: mono float ``[samples]`` at 16 kHz.
      words: the N normalised words that were aligned.
      alignment: their :class:`hmaf.data.align.Alignment`.
    """
    m = measures(samples, words, alignment)
    low, high = WORDS_PER_S
    if not low <= m["words_per_s"] <= high:
        return (f"speaking rate {m['words_per_s']:.1f} words per second of speech is outside the human "
                f"range [{low}, {high}] ({len(words)} words)")
    if "fit" in m and m["fit"] < MIN_FIT:
        return (f"the {alignment.aligner} alignment explains {m['fit']:.0%} of the speech with the words, "
                f"below {MIN_FIT:.0%}")
    if len(words) >= 3 and m["squeezed_share"] > MAX_SQUEEZED_SHARE:
        return (f"{m['squeezed_share']:.0%} of the words were squeezed to <= {1000 * SQUEEZED_S:.0f} ms "
                f"(limit {MAX_SQUEEZED_SHARE:.0%})")
    return None
