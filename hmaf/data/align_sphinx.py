"""Forced word alignment with pocketsphinx (HMM, explicit silences): samples + words -> times.

pocketsphinx's US English acoustic model and CMU dictionary ship in its wheel (offline).
The transcript becomes a finite-state grammar of its words, with optional silences
between them, and Viterbi search finds the best path through it; each word's start and
end are the first and last 10 ms frame of its segment, so a pause is its own ``<sil>``
segment and never part of a word.

Words outside the dictionary (names, numbers, non-ASCII, "rock'n'roll") get a
pronunciation from espeak-ng's letter-to-sound rules mapped to CMU phones
(:mod:`hmaf.data.g2p`), under a private ASCII alias, so any normalised word can be
aligned.

pocketsphinx prunes its search with beams tuned for recognition; in forced alignment
they can prune every path through the grammar, mostly at the last phone of a word
(measured on isolated words joined by pauses and on emotional synthetic speech; on the
preprocessing benchmark's espeak-ng speech they found no path for 107 of 200
utterances). So the search runs with wide beams (:data:`WIDE_BEAMS`) from the start:
on that benchmark it took 17.0 CPU-s where narrow beams first took 20.5, and on the
alignment benchmark's 438 utterances the onsets were the same to 0.1 ms in median, mean,
90th percentile and share within 20 ms. When no path is found, the search is rerun at
200 frames/s: every phone's HMM has three states and takes at least one frame per
state, so a phone shorter than 30 ms ("the" in 50 ms of fast speech) has no path at 100
frames/s. If no search finds a path: :class:`NoPathError` (``"auto"`` then falls back
to aeneas). Beams can also prune the right path and keep a worse one, which leaves
speech outside the words (e.g. "I felt so annoyed." in espeak-ng's en+f4, its first words placed 0.6 s late
under 46 % of the speech unexplained): when a path explains less than
:data:`RETRY_FIT` of the speech, the later searches run too and the path that explains
the most is kept (the first of equals).

A word can also be said otherwise than the dictionary has it: espeak-ng spells "Shh" out
("ess aitch aitch"), which the dictionary's ``SH`` cannot explain (fit 0.50-0.72 in
every search, measured on four voices). When no search explains :data:`SAID_OTHERWISE_FIT`
of the speech, the searches run once more with espeak-ng's pronunciation of each word as an
extra alternative beside the dictionary's (under a private name, so no other search sees
it), and the path that explains the most is kept as before.

With ``boundaries="signal"`` (ours; :data:`hmaf.data.align.BOUNDARIES`) two additions
around the search apply, measured on the alignment benchmark (seed 0, checked on seed 1
and held-out Flite speech, benchmarks/README.md):

- runs of exact zeros shorter than :data:`ZERO_RUN_S` get a noise floor of one
  quantisation step before the search (:func:`_pcm`);
- the kept path's boundaries are moved onto the signal at 1 ms resolution
  (:mod:`hmaf.data.boundaries`); without it they are the search's own 10 ms frames.

Confidence of a word: the geometric mean over its frames of pocketsphinx's acoustic
score relative to the best-scoring state of each frame, in (0, 1]; about 0.995 on clean
matching speech, and hardly lower for a wrong transcript (measured), so it is not used to
judge a transcript. The utterance's ``fit`` is: the share of its speech frames (within
:data:`FIT_TOP_DB` of the loudest) that fall inside words rather than in the silence and
noise segments the search may insert. A wrong transcript leaves speech unexplained
(measured in :mod:`hmaf.data.mismatch`).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading

import numpy as np

from hmaf.data.align import DEFAULT_BOUNDARIES, SAMPLE_RATE, Alignment, AlignmentError, NoPathError, speech_frames
from hmaf.data.boundaries import refine

# Frames within this of the loudest are speech the words must explain (``fit``); below it,
# breath, noise floors and reverberation tails may go to silence segments.
FIT_TOP_DB = 25.0
WIDE_BEAMS = {"beam": 1e-200, "wbeam": 1e-150, "pbeam": 1e-200, "lpbeam": 1e-150, "lponlybeam": 1e-150}
# The searches tried in order: (frames per second, wide beams).
SEARCHES = ((100, True), (200, True))
# A path that explains less of the speech than this sends the search on to the next
# settings; correct pairs measured mostly above 0.9 (hmaf.data.mismatch).
RETRY_FIT = 0.9
# Below this fit after every search, a word may be said otherwise than the dictionary has
# it: search again with espeak-ng's pronunciations as alternatives. "Shh" spelled out
# left fit 0.50-0.72; the preprocessing benchmark's 25 utterances below RETRY_FIT were
# mostly at 0.8-0.9, where the extra searches changed nothing (2.5 CPU-s for them all).
SAID_OTHERWISE_FIT = 0.8
# Runs of exact zeros shorter than this get the noise floor (boundaries="signal").
ZERO_RUN_S = 0.1
_ALTERNATE = re.compile(r"\(\d+\)$")  # "to(3)": the third pronunciation of "to"

_decoders: dict[tuple[int, bool], object] = {}  # search -> Decoder; loading the model takes ~1 s
_aliases: dict[str, str] = {}  # out-of-dictionary word -> the name it was added under
# word -> the private name under which it has the dictionary's pronunciations and then
# espeak-ng's ("n", "n(2)", ...); None where espeak-ng says it as the dictionary does
_spoken: dict[str, str | None] = {}
# Every entry added to the dictionary (name -> phones): each decoder, also one loaded later,
# has them all. The names depend on the word only, not on what the process aligned before.
_added: dict[str, str] = {}
# The decoders and names above are shared, and a pocketsphinx Decoder is not thread-safe:
# two threads searching at once crash the process (seen with Beam's in-process runner,
# which runs bundles on a thread pool). Process pools are unaffected.
_lock = threading.Lock()


def _decoder(frate: int, wide: bool):
    if (frate, wide) not in _decoders:
        from pocketsphinx import Decoder

        # cmn="batch": the cepstral mean of the whole utterance, not a running estimate.
        decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", frate=frate, cmn="batch",
                          **(WIDE_BEAMS if wide else {}))
        for name, phones in _added.items():
            decoder.add_word(name, phones, False)
        _decoders[frate, wide] = decoder
    return _decoders[frate, wide]


def _add_word(name: str, phones: str) -> None:
    _added[name] = phones
    # update=False: set_align_text builds each search from the dictionary as it is then;
    # updating the current search per word cost ~0.1 CPU-s per word and decoder, most of
    # pocketsphinx's time in a fresh worker on text with names (measured).
    for decoder in _decoders.values():
        decoder.add_word(name, phones, False)


def _tokens(decoder, words: list[str]) -> list[str]:
    """The dictionary name of each word, adding espeak-ng pronunciations for unknown words."""
    from hmaf.data.g2p import G2PError, pronounce

    unknown = [w for w in dict.fromkeys(words) if w not in _aliases and decoder.lookup_word(w) is None]
    if unknown:
        try:
            phones = pronounce(unknown)
        except G2PError as e:
            raise AlignmentError(f"no pronunciation: {e}") from None
        for word in unknown:
            _aliases[word] = f"hmafoov{hashlib.sha1(word.encode()).hexdigest()[:12]}"
            _add_word(_aliases[word], " ".join(phones[word]))
    return [_aliases.get(w, w) for w in words]


def _spoken_tokens(decoder, words: list[str]) -> list[str] | None:
    """Private names under which each word has espeak-ng's pronunciation as an alternative
    to the dictionary's; None when espeak-ng says every word as the dictionary does."""
    from hmaf.data.g2p import G2PError, pronounce

    tokens = _tokens(decoder, words)
    new = [w for w in dict.fromkeys(words) if w not in _spoken and w not in _aliases]
    if new:
        try:
            spoken = pronounce(new)
        except G2PError:
            return None
        for word in new:
            known, n = [], 1
            while (phones := decoder.lookup_word(word if n == 1 else f"{word}({n})")) is not None:
                known.append(phones)
                n += 1
            said = " ".join(spoken[word])
            _spoken[word] = None if said in known else f"hmafsay{hashlib.sha1(word.encode()).hexdigest()[:12]}"
            if _spoken[word] is not None:
                for i, phones in enumerate([*known, said]):
                    _add_word(_spoken[word] if i == 0 else f"{_spoken[word]}({i + 1})", phones)
    if not any(_spoken.get(w) for w in words):
        return None
    return [_spoken.get(w) or token for w, token in zip(words, tokens)]


def pronunciation(word: str) -> list[str]:
    """The CMU phones pocketsphinx aligns ``word`` with (its first pronunciation, or the
    espeak-ng one it adds for a word outside its dictionary)."""
    with _lock:
        decoder = _decoder(*SEARCHES[0])
        token = _tokens(decoder, [word])[0]
        return (decoder.lookup_word(token) or "").split()


def _search(decoder, pcm: bytes, tokens: list[str]):
    # A fresh feature front end: its state from earlier utterances shifted boundaries by a
    # frame, so the times depended on what the process had aligned before (measured).
    decoder.reinit_feat()
    decoder.set_align_text(" ".join(tokens))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return decoder.seg()


def _paths(pcm: bytes, words: list[str], spoken: bool = False):
    """Yields (segments, tokens, frames per second) of each search in :data:`SEARCHES`
    that finds a path, in order; with ``spoken``, espeak-ng's pronunciations are
    alternatives too (none is yielded when it adds none). Each segment is copied out of the
    decoder as (word, start frame, end frame, acoustic score) while the caller still holds
    ``_lock``."""
    for frate, wide in SEARCHES:
        decoder = _decoder(frate, wide)
        try:
            tokens = _spoken_tokens(decoder, words) if spoken else _tokens(decoder, words)
            if tokens is None:
                return
            segments = _search(decoder, pcm, tokens)
        except RuntimeError as e:  # pocketsphinx raises RuntimeError for its own failures
            raise AlignmentError(f"pocketsphinx failed: {e}") from None
        if segments is not None:
            yield [(seg.word, seg.start_frame, seg.end_frame, seg.ascore) for seg in segments], tokens, frate


def _alignment(segments, tokens: list[str], frate: int, words: list[str],
               speech: np.ndarray) -> tuple[Alignment, list[str]]:
    """The words' times, confidences and fit of one path (see the module docstring), and
    the dictionary entry each word was aligned with ("and(2)")."""
    expected = iter(tokens)
    want = next(expected, None)
    starts, ends, confidence, entries = [], [], [], []
    unexplained = 0
    for word, start_frame, end_frame, ascore in segments:
        if want is None or _ALTERNATE.sub("", word) != want:
            first, last = start_frame * 100 // frate, (end_frame + 1) * 100 // frate
            unexplained += int(np.sum(speech[first:last]))
        else:
            frames = end_frame - start_frame + 1
            starts.append(start_frame / frate)
            ends.append((end_frame + 1) / frate)
            confidence.append(math.exp(math.log(max(ascore, 1e-300)) / max(frames, 1)))
            entries.append(word)
            want = next(expected, None)
    if len(starts) != len(words):
        raise AlignmentError(f"pocketsphinx returned {len(starts)} of {len(words)} words")
    fit = 1.0 - unexplained / max(int(np.sum(speech)), 1)
    return Alignment(starts=np.asarray(starts), ends=np.asarray(ends), confidence=np.asarray(confidence),
                     aligner="pocketsphinx", fit=fit), entries


def _pcm(samples: np.ndarray, floor: bool) -> bytes:
    """16-bit PCM of float ``samples`` ``[samples]``; with ``floor``, runs of exact zeros
    shorter than :data:`ZERO_RUN_S` filled with noise of one quantisation step (the same
    noise every call).

    Synthesizers render stop closures and short pauses as exact zeros, a log energy the
    acoustic model never saw in training; espeak-ng's words next to them were placed up
    to 0.3 s off (alignment benchmark). Noise everywhere fixed those but moved words after
    long digital silences 25-70 ms early (isolated words joined by zeros), so longer runs
    are left as they are. Measured on the alignment benchmark, seed 0 (with
    :mod:`hmaf.data.boundaries`): onset mean 16.8 ms without the noise, 14.3 ms with it
    everywhere, 14.8 ms with it in short runs.
    """
    if not floor:
        return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))  # run i: [edges[2i], edges[2i + 1])
    begin, end = edges[::2], edges[1::2]
    short = end - begin < ZERO_RUN_S * SAMPLE_RATE
    step = np.zeros(samples.size + 1, np.int8)
    step[begin[short]], step[end[short]] = 1, -1  # runs are disjoint: no index twice
    fill = np.cumsum(step[:-1], dtype=np.int32) > 0
    noisy = samples.copy()
    noisy[fill] = (np.random.default_rng(0).standard_normal(samples.size).astype(np.float32) / 32767.0)[fill]
    return (np.clip(noisy, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def align(samples: np.ndarray, words: list[str], *, boundaries: str = DEFAULT_BOUNDARIES) -> Alignment:
    """Times each word in 16 kHz mono float ``samples`` ``[samples]``; ``boundaries``:
    "hmm" (the search's frames) or "signal" (the floor and :mod:`hmaf.data.boundaries`).

    Returns:
      :class:`hmaf.data.align.Alignment` with per-word starts, ends (seconds) and confidence.

    Raises:
      NoPathError: the words cannot be fitted to the audio (see the module docstring).
      AlignmentError: any other failure (no pronunciation, decoder error, bad output).
    """
    samples = np.asarray(samples, dtype=np.float32)
    on_signal = boundaries == "signal"
    pcm = _pcm(samples, floor=on_signal)
    speech = speech_frames(samples, SAMPLE_RATE, FIT_TOP_DB)
    best = entries = None
    with _lock:
        for spoken in (False, True):
            if spoken and best is not None and best.fit >= SAID_OTHERWISE_FIT:
                break
            for segments, tokens, frate in _paths(pcm, list(words), spoken):
                found, aligned = _alignment(segments, tokens, frate, list(words), speech)
                if best is None or found.fit > best.fit:
                    best, entries = found, aligned
                if best.fit >= RETRY_FIT:
                    break
        if best is None:
            raise NoPathError(f"pocketsphinx found no alignment of the {len(words)} words to "
                              f"{len(samples) / SAMPLE_RATE:.2f} s of audio in any search")
        if on_signal:
            decoder = _decoder(*SEARCHES[0])
            first_phones = [((decoder.lookup_word(entry) or "").split() or [""])[0] for entry in entries]
    if on_signal:
        best.starts, best.ends = refine(samples, best.starts, best.ends, first_phones)
    return best
