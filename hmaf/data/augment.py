"""Waveform augmentation at prepare time: noise, reverberation, telephone channel, gain, speed.

Not in the paper (Gu et al. train on the recordings as they are). It is switched off unless
``python -m hmaf.prepare --augment SPEC`` is given; each augmented copy is an extra manifest
row with id ``<original id>~<name>``, the original's speaker, group, split, label and
transcript, and ``augment`` set to the *resolved* spec of the copy (every drawn value and the
noise seed written out), so the copy is a pure function of the original audio and its
``augment`` string: reruns give the same bytes, and the record says exactly what was done.

Spec language (``--augment``): items separated by ``,``; one item is one augmented copy
(``xN`` at its end: N copies, each with its own draws); steps of one item are chained with
``+`` (``reverb+noise:pink`` reverberates, then adds pink noise). A step is
``kind[:variant][:key=value]...``; a value is a number or a range ``lo-hi`` drawn uniformly
per copy (``db=-6-6`` is -6 to 6 dB):

=================================  ===================================================
step                               meaning (defaults)
=================================  ===================================================
``noise:white[:snr=5-20]``         white noise at a drawn SNR in dB
``noise:pink[:snr=5-20]``          1/f noise (-3 dB/octave) at a drawn SNR
``noise:babble[:snr=5-20]``        the sum of ``voices=4`` other utterances of other
``[:voices=4]``                    speakers (train-split rows when the manifest has
                                   splits), chosen deterministically per copy
``reverb[:rt60=0.2-0.8]``          a synthetic room impulse response: a direct path plus
                                   exponentially decaying noise reaching -60 dB at RT60 s
``telephone``                      300-3400 Hz band-pass and an 8 kHz round trip
``gain[:db=-6-6]``                 a drawn gain in dB
``speed:F``                        speed perturbation by F in (0.5, 2] (resampled: tempo
                                   and pitch change; word timings scale by 1/F)
=================================  ===================================================

Names (the id suffix): ``noise-white``, ``noise-pink``, ``noise-babble``, ``reverb``,
``telephone``, ``gain``, ``speed-0.9``; chains join them with ``+``; ``xN`` appends
``-1`` .. ``-N``. Example: ``--augment "noise:white:snr=5-20,reverb:rt60=0.2-0.8,speed:0.9,
speed:1.1,telephone+noise:babble:snr=10-20x2"`` makes six copies of every utterance.

Word timings come from the CLEAN audio (aligned or given) and are only scaled (speed):
every step keeps the signal's time axis (filters are zero-phase, the reverberation tail
past the end is cut), so the words stay where the aligner found them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
from typing import Sequence

import numpy as np

from hmaf.data.audio import SAMPLE_RATE, AudioError, load_audio, resample
from hmaf.data.folds import SPLITS
from hmaf.data.manifest import ManifestRow

NOISE_TYPES = ("white", "pink", "babble")
KINDS = ("noise", "reverb", "telephone", "gain", "speed")
# Drawn when the spec leaves a parameter out.
DEFAULT_RANGES = {"noise": {"snr": (5.0, 20.0)}, "reverb": {"rt60": (0.2, 0.8)}, "gain": {"db": (-6.0, 6.0)}}
BABBLE_VOICES = 4
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
# The splits whose rows never get copies (their copies could never be trained on).
EVAL_SPLITS = tuple(split for split in SPLITS if split != "train")
# Characters the spec language uses; babble source paths holding them are not chosen.
_RESERVED = set(",+:|=")

_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^({_NUMBER})(?:-({_NUMBER}))?$")
_COPIES = re.compile(r"x(\d+)$")


class AugmentSpecError(ValueError):
    """A malformed ``--augment`` spec; the message names the item and the problem."""


class AugmentError(Exception):
    """An augmentation that cannot be applied to one utterance (e.g. a babble source is unreadable)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One augmentation step.

    Attributes:
      kind: one of :data:`KINDS`.
      variant: the noise type for "noise", the factor text for "speed", "" otherwise.
      ranges: drawn parameters, name -> (low, high); low == high for a fixed value.
      seed: the noise/RIR seed of a resolved step, None in a user spec.
      sources: babble source paths of a resolved step (relative to the utterance's folder).
      voices: how many babble sources a copy draws.
    """

    kind: str
    variant: str = ""
    ranges: tuple[tuple[str, tuple[float, float]], ...] = ()
    seed: int | None = None
    sources: tuple[str, ...] = ()
    voices: int = BABBLE_VOICES

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.variant}" if self.variant else self.kind

    def value(self, key: str) -> tuple[float, float]:
        return dict(self.ranges)[key]


@dataclasses.dataclass(frozen=True)
class Item:
    """One item of a spec: a chain of steps, made into ``copies`` copies."""

    steps: tuple[Step, ...]
    copies: int

    def names(self) -> list[str]:
        base = "+".join(step.name for step in self.steps)
        return [base] if self.copies == 1 else [f"{base}-{k + 1}" for k in range(self.copies)]


def _parse_step(text: str, where: str) -> Step:
    parts = text.split(":")
    kind = parts[0].strip()
    if kind not in KINDS:
        raise AugmentSpecError(f"{where}: unknown augmentation {kind!r} (one of {', '.join(KINDS)})")
    rest = [p.strip() for p in parts[1:]]
    variant = ""
    if kind in ("noise", "speed"):
        if not rest or "=" in rest[0]:
            what = "a noise type (white, pink, babble)" if kind == "noise" else "a factor, e.g. speed:0.9"
            raise AugmentSpecError(f"{where}: {kind} needs {what}")
        variant, rest = rest[0], rest[1:]
    if kind == "noise" and variant not in NOISE_TYPES:
        raise AugmentSpecError(f"{where}: unknown noise type {variant!r} (one of {', '.join(NOISE_TYPES)})")
    if kind == "speed":
        try:
            factor = float(variant)
        except ValueError:
            raise AugmentSpecError(f"{where}: speed factor {variant!r} is not a number") from None
        if not 0.5 < factor <= 2.0 or factor == 1.0:
            raise AugmentSpecError(f"{where}: speed factor {factor:g} must be in (0.5, 2] and not 1")
        variant = f"{factor:g}"
    allowed = {"noise": {"snr", "seed"}, "reverb": {"rt60", "seed"}, "gain": {"db"}}.get(kind, set())
    if variant == "babble":
        allowed = allowed | {"voices", "sources"}
    ranges = dict(DEFAULT_RANGES.get(kind, {}))
    seed, sources, voices = None, (), BABBLE_VOICES
    for part in rest:
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            accepted = ", ".join(sorted(allowed)) or "no parameters"
            raise AugmentSpecError(f"{where}: {part!r} is not a parameter of {kind} (takes {accepted})")
        if key == "sources":
            sources = tuple(s for s in value.split("|") if s)
            continue
        if key in ("seed", "voices"):
            if not value.isdigit() or (key == "voices" and int(value) < 1):
                raise AugmentSpecError(f"{where}: {key} must be a {'positive ' if key == 'voices' else ''}integer, "
                                       f"got {value!r}")
            seed, voices = (int(value), voices) if key == "seed" else (seed, int(value))
            continue
        match = _RANGE.match(value.strip())
        if not match:
            raise AugmentSpecError(f"{where}: {key}={value!r} is not a number or a range lo-hi")
        low = float(match.group(1))
        high = float(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise AugmentSpecError(f"{where}: {key} range {value!r} has its high end below its low end")
        if key == "rt60" and low <= 0:
            raise AugmentSpecError(f"{where}: rt60 must be > 0 s, got {value!r}")
        ranges[key] = (low, high)
    return Step(kind, variant, tuple(sorted(ranges.items())), seed, sources, voices)


def parse_augment(spec: str) -> list[Item]:
    """Parses an ``--augment`` spec (module docstring) into items, one per copy group.

    Raises:
      AugmentSpecError: naming the bad item, e.g. ``item 2 'noise:brown': unknown noise type``.
    """
    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(spec.split(","), start=1):
        text = text.strip()
        where = f"--augment item {number} {text!r}"
        if not text:
            raise AugmentSpecError(f"{where}: empty item (stray comma?)")
        copies = 1
        match = _COPIES.search(text)
        if match:
            copies = int(match.group(1))
            text = text[:match.start()]
            if copies < 1:
                raise AugmentSpecError(f"{where}: the copy count must be >= 1")
        steps = tuple(_parse_step(part, where) for part in text.split("+"))
        item = Item(steps, copies)
        for name in item.names():
            if name in seen:
                raise AugmentSpecError(f"{where}: makes copy {name!r} like item {seen[name]}; "
                                       f"merge them with xN")
            seen[name] = number
        items.append(item)
    return items


def _seed(utt_id: str, name: str, index: int) -> int:
    """A 31-bit seed from the utterance id, the copy name and the step's position."""
    digest = hashlib.sha256(f"{utt_id}\x00{name}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def format_step(step: Step) -> str:
    """The spec text of a step (a resolved step's text parses back to the same step)."""
    parts = [step.kind] + ([step.variant] if step.variant else [])
    for key, (low, high) in step.ranges:
        parts.append(f"{key}={low:g}" if low == high else f"{key}={low:g}-{high:g}")
    if step.variant == "babble" and not step.sources:
        parts.append(f"voices={step.voices}")
    if step.seed is not None:
        parts.append(f"seed={step.seed}")
    if step.sources:
        parts.append("sources=" + "|".join(step.sources))
    return ":".join(parts)


def resolve(item: Item, copy: int, utt_id: str, babble_pool: Sequence[str] = ()) -> str:
    """The resolved spec of copy ``copy`` of ``item`` for utterance ``utt_id``.

    Draws every range (rounded: 0.01 dB, 1 ms of RT60, so the text is exact), gives each
    step its seed and picks babble sources from ``babble_pool`` (paths already relative to
    the utterance's folder), all from seeds of (utt_id, copy name, step index). A seed or
    sources the spec gives are kept, so resolving a resolved spec changes nothing.

    Raises:
      AugmentError: babble needs sources and the pool is empty.
    """
    name = item.names()[copy]
    texts = []
    for index, step in enumerate(item.steps):
        seed = step.seed if step.seed is not None else _seed(utt_id, name, index)
        rng = np.random.default_rng(seed)
        digits = {"rt60": 3}
        ranges = tuple((key, (v, v)) for key, (low, high) in step.ranges
                       for v in [round(float(rng.uniform(low, high)), digits.get(key, 2))])
        sources = step.sources
        if step.variant == "babble" and not sources:
            if not babble_pool:
                raise AugmentError(f"{utt_id}: babble needs utterances of other speakers, and there are none")
            picks = rng.choice(len(babble_pool), size=min(step.voices, len(babble_pool)), replace=False)
            sources = tuple(babble_pool[int(i)] for i in picks)
        needs_seed = step.kind == "reverb" or step.kind == "noise"
        texts.append(format_step(dataclasses.replace(step, ranges=ranges, seed=seed if needs_seed else None,
                                                     sources=sources)))
    return "+".join(texts)


def _usable_source(rel: str) -> bool:
    """Whether a path can stand in a resolved spec (no spec syntax in it)."""
    return not (_RESERVED & set(rel) or _COPIES.search(rel))


def expand_rows(rows: Sequence[ManifestRow], spec: str,
                timings: Sequence[tuple[tuple[str, float, float], ...] | None] | None = None) -> list[ManifestRow]:
    """The augmented copies of manifest rows.

    Copy ``k`` of an item for row ``r`` is ``r`` with id ``<r.id>~<name>`` and ``augment``
    its resolved spec. Rows in a validation or test split get no copies. Babble sources of
    ``r`` are rows of other speakers (train-split or split-less rows), paths relative to
    ``r``'s folder.

    Args:
      rows: the original rows.
      spec: the ``--augment`` spec.
      timings: optional, per row: its clean ``((word, start_s, end_s), ...)`` (from the
        original's preprocessing), given to its copies as ``word_timings`` so that a copy is
        not aligned again; None for a row that failed, which then gets no copies and is no
        babble source.

    Returns:
      The copies, grouped by original row, in row order.

    Raises:
      AugmentSpecError: a bad spec, or babble asked for in a corpus with one speaker.
    """
    items = parse_augment(spec)
    wants_babble = any(step.variant == "babble" for item in items for step in item.steps)
    failed = [False] * len(rows) if timings is None else [words is None for words in timings]
    timings = [row.word_timings for row in rows] if timings is None else list(timings)
    usable = [(row, words) for row, words, bad in zip(rows, timings, failed, strict=True)
              if not bad and row.split not in EVAL_SPLITS and not row.augment]
    pool = [row for row, _ in usable]
    copies = []
    for row, words in usable:
        babble_pool: list[str] = []
        if wants_babble:
            folder = os.path.dirname(row.audio)
            babble_pool = [rel for other in pool if other.speaker != row.speaker
                           for rel in [os.path.relpath(other.audio, folder)] if _usable_source(rel)]
            if not babble_pool:
                raise AugmentSpecError(f"--augment: babble for {row.id!r} needs utterances of other speakers "
                                       f"(speaker {row.speaker!r} is the only one)")
        for item in items:
            for k, name in enumerate(item.names()):
                copies.append(dataclasses.replace(row, id=f"{row.id}~{name}", word_timings=words,
                                                  augment=resolve(item, k, row.id, babble_pool)))
    return copies


def cache_fields(row: ManifestRow) -> dict[str, object]:
    """What a copy's preprocessing depends on beyond its own audio: its spec and the babble
    sources' bytes (sha256; None for one that cannot be read, which the copy then rejects)."""
    folder = os.path.dirname(row.audio)
    hashes: list[str | None] = []
    for item in parse_augment(row.augment):
        for step in item.steps:
            for rel in step.sources:
                try:
                    with open(os.path.join(folder, rel), "rb") as f:
                        hashes.append(hashlib.sha256(f.read()).hexdigest())
                except OSError:
                    hashes.append(None)
    return {"augment": row.augment, "babble_sha256": hashes}


# ---------------------------------------------------------------------------- signals

def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, float64 ``[n]``."""
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise, float64 ``[n]``: white noise shaped in the frequency domain.

    Power falls as 1/f (-3 dB per octave); the DC bin is zeroed. Made at an FFT-friendly
    length and cut to ``n`` (an FFT of a length with large prime factors is ~10x slower).
    """
    from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

    m = next_fast_len(n, real=True)
    spectrum = rfft(rng.standard_normal(m))
    freqs = rfftfreq(m)
    scale = np.zeros_like(freqs)
    scale[1:] = 1.0 / np.sqrt(freqs[1:])
    return irfft(spectrum * scale, m)[:n]


def babble_noise(sources: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """The sum of speech sources, each at unit RMS, looped to ``n`` samples from a random offset.

    Args:
      sources: float waveforms ``[m_i]`` at 16 kHz.
    Returns:
      float64 ``[n]``.
    """
    out = np.zeros(n)
    for source in sources:
        source = np.asarray(source, dtype=np.float64)
        level = rms(source)
        if level == 0:
            continue
        start = int(rng.integers(source.size))
        out += np.resize(np.roll(source, -start), n) / level
    return out


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``noise`` scaled so that 10 log10(P_signal / P_noise) = ``snr_db`` exactly.

    Powers are means over the whole utterance (pauses included). Returns float32 ``[n]``.
    """
    noise_rms = rms(noise)
    if noise_rms == 0:
        raise AugmentError("the noise is all zeros")
    scale = rms(samples) / noise_rms * 10 ** (-snr_db / 20)
    return (np.asarray(samples, dtype=np.float64) + scale * noise).astype(np.float32)


def room_impulse_response(rt60: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response ``[ceil(rt60 * sample_rate)]`` float64.

    A unit direct path followed by Gaussian noise whose amplitude decays as
    10^(-3 t / rt60): its energy falls 60 dB in ``rt60`` seconds (the definition of RT60).
    The tail starts 2.5 ms after the direct path and carries as much energy as the direct
    path per 50 ms of decay time, a mid-size room's direct-to-reverberant balance.
    """
    n = max(int(math.ceil(rt60 * sample_rate)), 2)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)
    tail[: int(0.0025 * sample_rate)] = 0
    tail *= math.sqrt(rt60 / 0.05) / max(np.linalg.norm(tail), 1e-12)
    tail[0] = 1.0
    return tail


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolves with ``rir``, keeps the first ``len(samples)`` samples and the input's RMS.

    The time axis is unchanged (the direct path is at lag 0), so word timings still hold.
    Returns float32 ``[n]``.
    """
    from scipy.signal import fftconvolve

    x = np.asarray(samples, dtype=np.float64)
    out = fftconvolve(x, rir)[: x.size]
    level = rms(out)
    return (out * (rms(x) / level if level > 0 else 1.0)).astype(np.float32)


def telephone(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band-pass, then down to 8 kHz and back.

    The band-pass is an 8th-order Butterworth run forward and backward (zero phase, so
    words do not move); the 8 kHz round trip (soxr) removes what is left above 4 kHz.
    Returns float32 ``[n]``.
    """
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, TELEPHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
    band = sosfiltfilt(sos, np.asarray(samples, dtype=np.float64)).astype(np.float32)
    narrow = resample(band, sample_rate, TELEPHONE_RATE)
    return resample(narrow, TELEPHONE_RATE, sample_rate)[: band.size]


def apply_gain(samples: np.ndarray, db: float) -> np.ndarray:
    """``samples`` times 10^(db/20) (no clipping: features are log-mel of float audio)."""
    return (np.asarray(samples, dtype=np.float64) * 10 ** (db / 20)).astype(np.float32)


def change_speed(samples: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speed perturbation: plays ``samples`` ``factor`` times faster (tempo and pitch).

    The signal is read as if sampled at ``factor * sample_rate`` and resampled to
    ``sample_rate``: ``[n]`` -> ``[ceil(n / factor)]`` float32; times scale by 1 / factor.
    """
    return resample(np.asarray(samples, dtype=np.float32), int(round(factor * sample_rate)), sample_rate)


def apply_augment(samples: np.ndarray, spec: str, base_dir: str = ".") -> tuple[np.ndarray, float]:
    """Applies a resolved spec (as :func:`resolve` writes it) to a 16 kHz waveform.

    Args:
      samples: float32 ``[n]`` at 16 kHz.
      spec: a resolved spec: fixed values, seeds present for noise and reverb.
      base_dir: the folder relative babble source paths are read from.

    Returns:
      (float32 ``[m]`` augmented samples, time scale: multiply word times by it).

    Raises:
      AugmentError: a spec that is not resolved, or a babble source that cannot be read.
    """
    (item,) = parse_augment(spec)
    out = np.asarray(samples, dtype=np.float32)
    time_scale = 1.0
    for step in item.steps:
        values = {key: low for key, (low, high) in step.ranges}
        if any(low != high for _, (low, high) in step.ranges):
            raise AugmentError(f"{spec!r} is not resolved: it holds ranges")
        if step.kind in ("noise", "reverb") and step.seed is None:
            raise AugmentError(f"{spec!r} is not resolved: {step.name} has no seed")
        rng = np.random.default_rng(step.seed)
        if step.kind == "noise":
            if step.variant == "white":
                noise = white_noise(out.size, rng)
            elif step.variant == "pink":
                noise = pink_noise(out.size, rng)
            else:
                if not step.sources:
                    raise AugmentError(f"{spec!r} is not resolved: babble has no sources")
                sources = []
                for rel in step.sources:
                    path = os.path.normpath(os.path.join(base_dir, rel))
                    try:
                        sources.append(load_audio(path))
                    except AudioError as e:
                        raise AugmentError(f"babble source {e}") from None
                noise = babble_noise(sources, out.size, rng)
            out = add_noise(out, noise, values["snr"])
        elif step.kind == "reverb":
            out = reverberate(out, room_impulse_response(values["rt60"], rng))
        elif step.kind == "telephone":
            out = telephone(out)
        elif step.kind == "gain":
            out = apply_gain(out, values["db"])
        else:
            factor = float(step.variant)
            out = change_speed(out, factor)
            time_scale /= factor
    return out, time_scale
