"""Speech synthesis with CMU Flite, timed word by word from Flite's own utterance structure.

Flite (Debian ``flite`` / ``libflite1``, version 2.2) is a third engine beside espeak-ng and
festival, with its own runtime and voices: ``kal16`` (diphone), ``awb``, ``rms`` and ``slt``
(clustergen, statistical parametric). ``kal`` (8 kHz diphones, the same recordings as
``kal16``) and ``awb_time`` (a talking clock) are left out. A voice name may carry a
persona suffix, ``rms+p1``: a stable pitch and rate offset (the same
:data:`hmaf.corpora.festival.PERSONAS`) that makes a further speaker of the same voice.

The library is driven in-process through ctypes (:class:`_Library`), one synthesis at a
time under a process-wide lock (Flite's voices are shared global objects). The synthesis
pipeline is Flite's own, run in two steps so that word-level emphasis can be attached to
the tokens: the tokenizer module, then :c:func:`utt_synth_tokens` (text analysis, phrasing,
lexicon, pauses, intonation, duration, F0, waveform).

Word timings are Flite's: a word's **start** is the end of the segment before its first
segment (``R:SylStructure.daughter.daughter.R:Segment.p.end``), its **end** the end of its
last segment; pauses are ``pau`` segments outside every word. A transcript token
(whitespace-separated) that Flite speaks as several words ("42" -> forty two) spans them
all. The clustergen voices recompute segment ends from their state durations before the
waveform is made (``cg_make_params``), so the times read after synthesis are those of the
audio.

Delivery, from the same percentages as the other engines (:class:`hmaf.corpora.tts.Prosody`):

* rate: the voice feature ``duration_stretch`` = 100 / rate% (x the persona's rate);
* pitch mean and range: the F0 model's target mean and standard deviation
  (``int_f0_target_mean`` = voice mean x (1 + pitch%) x persona pitch,
  ``int_f0_target_stddev`` = voice sd x (1 + range%)); the voice's own mean and sd are
  read from the voice (diphone: its features; clustergen: its model's ``f0_mean`` and
  ``f0_stddev``), so 0 % leaves a voice as Flite ships it. ``rms`` draws its F0 from an
  accent model (``spamf0``) that ignores both settings (measured): there the same formula,
  ``f0' = mean*(1+pitch) + (f0-mean)*(1+range)``, is applied to the waveform by Praat's
  PSOLA (:func:`hmaf.corpora.shaping.psola`, as festival does for its HTS voice);
* volume: as festival (:mod:`hmaf.corpora.shaping`): the active speech is brought
  to :data:`hmaf.corpora.shaping.REFERENCE_DBFS`, then scaled by ``1 + volume%``, peaks
  above 0.8 bent towards 1;
* word emphasis (a segment's own prosody): duration through Flite's token feature
  ``local_duration_stretch`` (read by both duration paths); pitch through the token
  feature ``local_f0_shift`` for the diphone voice (its F0 model reads it); the clustergen
  F0 model of Flite 2.2 reads no per-token pitch, so there the words' spans are raised by
  PSOLA (pitch only: the durations are already Flite's);
  the gain is applied to the words' spans (10 ms ramps) for every voice.

Deterministic: every request sets every voice feature it uses, and the C library's
``rand()`` (the clustergen excitation draws from it) is seeded before each synthesis, so
the same input gives the same bytes whatever was synthesised before (tested).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import threading
from typing import Sequence

import numpy as np

from hmaf.corpora import festival, shaping, tts

SAMPLE_RATE = 16000
# name -> (library suffix, kind); the kind decides the pitch path: "diphone", "cg"
# (clustergen), "spamf0" (clustergen whose accent model replaces the whole F0 track after
# the target mean/sd are applied: measured, rms ignores them, so its pitch goes through PSOLA).
VOICES = {
    "kal16": ("cmu_us_kal16", "diphone"),
    "awb": ("cmu_us_awb", "cg"),
    "rms": ("cmu_us_rms", "spamf0"),
    "slt": ("cmu_us_slt", "cg"),
}
PERSONAS = festival.PERSONAS
RAND_SEED = 0
_LOCK = threading.Lock()  # one synthesis at a time in this process: Flite's voices are global


class _Wave(ctypes.Structure):
    # Mirrors cst_wave (cst_wave.h).
    _fields_ = [("type", ctypes.c_char_p), ("sample_rate", ctypes.c_int),
                ("num_samples", ctypes.c_int), ("num_channels", ctypes.c_int),
                ("samples", ctypes.POINTER(ctypes.c_short))]


class _Voice(ctypes.Structure):
    # The head of cst_voice (cst_voice.h): name, features, ...
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p)]


class _CgDbHead(ctypes.Structure):
    # The head of cst_cg_db (cst_cg.h), up to the model's F0 mean and standard deviation.
    _fields_ = [("name", ctypes.c_char_p), ("types", ctypes.c_void_p), ("num_types", ctypes.c_int),
                ("sample_rate", ctypes.c_int), ("f0_mean", ctypes.c_float),
                ("f0_stddev", ctypes.c_float)]


class _SynthModule(ctypes.Structure):
    # cst_synth_module (cst_synth.h): the voice feature naming a hook, and its default.
    _fields_ = [("hookname", ctypes.c_char_p), ("defhook", ctypes.c_void_p)]


def _find(name: str) -> str | None:
    return ctypes.util.find_library(name)


def available() -> bool:
    """Whether libflite and every voice of :data:`VOICES` can be found."""
    return all(_find(n) for n in ("flite", "flite_usenglish", "flite_cmulex",
                                  *(f"flite_{lib}" for lib, _ in VOICES.values())))


@dataclasses.dataclass(frozen=True)
class _LoadedVoice:
    pointer: ctypes.POINTER(_Voice)
    kind: str
    f0_mean: float  # Hz, the voice's own F0 model mean
    f0_stddev: float


class _Library:
    """libflite and its English front end, loaded once per process (:func:`_library`)."""

    def __init__(self) -> None:
        if not available():
            raise tts.TTSError("Flite not found: install the Debian package flite (libflite1 and "
                               "its voices; tools/setup.sh)")
        mode = ctypes.RTLD_GLOBAL  # the voice libraries resolve usenglish/cmulex symbols here
        self.lib = ctypes.CDLL(_find("flite"), mode=mode)
        ctypes.CDLL(_find("flite_usenglish"), mode=mode)
        ctypes.CDLL(_find("flite_cmulex"), mode=mode)
        self.libc = ctypes.CDLL(None)
        lib, p, f = self.lib, ctypes.c_void_p, ctypes.c_float
        for name, restype, argtypes in (
                ("flite_init", ctypes.c_int, []),
                ("new_utterance", p, []),
                ("delete_utterance", None, [p]),
                ("utt_set_input_text", None, [p, ctypes.c_char_p]),
                ("utt_init", p, [p, p]),
                ("apply_synth_module", p, [p, ctypes.POINTER(_SynthModule)]),
                ("utt_synth_tokens", p, [p]),
                ("utt_relation", p, [p, ctypes.c_char_p]),
                ("relation_head", p, [p]),
                ("item_next", p, [p]),
                ("item_set_int", None, [p, ctypes.c_char_p, ctypes.c_int]),
                ("item_set_float", None, [p, ctypes.c_char_p, f]),
                ("ffeature_float", f, [p, ctypes.c_char_p]),
                ("ffeature_int", ctypes.c_int, [p, ctypes.c_char_p]),
                ("utt_wave", ctypes.POINTER(_Wave), [p]),
                ("flite_feat_set_float", None, [p, ctypes.c_char_p, f]),
                ("flite_get_param_float", f, [p, ctypes.c_char_p, f]),
                ("get_param_val", p, [p, ctypes.c_char_p, p]),
                ("val_cg_db", ctypes.POINTER(_CgDbHead), [p])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        lib.flite_init()
        self.tokenizer = _SynthModule(b"tokenizer_func",
                                      ctypes.cast(lib.default_tokenization, p).value)
        self.voices: dict[str, _LoadedVoice] = {}

    def voice(self, base: str) -> _LoadedVoice:
        if base not in self.voices:
            suffix, kind = VOICES[base]
            vlib = ctypes.CDLL(_find(f"flite_{suffix}"), mode=ctypes.RTLD_GLOBAL)
            register = getattr(vlib, f"register_{suffix}")
            register.restype, register.argtypes = ctypes.POINTER(_Voice), [ctypes.c_char_p]
            pointer = register(None)
            if not pointer:
                raise tts.TTSError(f"Flite could not load voice {base!r}")
            features = pointer.contents.features
            if kind != "diphone":
                db = self.lib.val_cg_db(self.lib.get_param_val(features, b"cg_db", None)).contents
                mean, sd = float(db.f0_mean), float(db.f0_stddev)
            else:  # the defaults us_f0_model itself falls back to
                mean = float(self.lib.flite_get_param_float(features, b"int_f0_target_mean", 100.0))
                sd = float(self.lib.flite_get_param_float(features, b"int_f0_target_stddev", 12.0))
            self.voices[base] = _LoadedVoice(pointer, kind, mean, sd)
        return self.voices[base]


_LIBRARY: _Library | None = None


def _library() -> _Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _Library()
    return _LIBRARY


def parse_voice(voice: str) -> shaping.VoiceSpec:
    """``kal16``, ``awb``, ``rms``, ``slt``, optionally with a persona: ``rms+p1``."""
    return shaping.parse_voice("flite", voice, VOICES, PERSONAS)


def _raw(spec: shaping.VoiceSpec, text: str, tokens: Sequence[shaping.Token], stretch: float,
         shift: float, spread: float) -> tuple[np.ndarray, list[tuple[int, float, float]], int]:
    """Flite's 16 kHz audio ``[samples]``, [(token index, start s, end s)] per word, token count.

    shift/spread: factors on the voice's F0 mean and standard deviation.
    """
    lib = _library()
    with _LOCK:
        voice = lib.voice(spec.base)
        f, features = lib.lib, voice.pointer.contents.features
        f.flite_feat_set_float(features, b"duration_stretch", stretch)
        f.flite_feat_set_float(features, b"int_f0_target_mean", voice.f0_mean * shift)
        f.flite_feat_set_float(features, b"int_f0_target_stddev", voice.f0_stddev * spread)
        f.flite_feat_set_float(features, b"f0_shift", 1.0)
        lib.libc.srand(RAND_SEED)
        utt = f.new_utterance()
        try:
            f.utt_set_input_text(utt, text.encode("utf-8"))
            f.utt_init(utt, voice.pointer)
            f.apply_synth_module(utt, ctypes.byref(lib.tokenizer))
            count, item = 0, f.relation_head(f.utt_relation(utt, b"Token"))
            while item:
                f.item_set_int(item, b"hmaf_i", count)
                if count < len(tokens):
                    t = tokens[count]
                    if t.duration != 1.0:
                        f.item_set_float(item, b"local_duration_stretch", t.duration)
                    if t.pitch != 1.0 and voice.kind == "diphone":
                        f.item_set_float(item, b"local_f0_shift", t.pitch)
                count += 1
                item = f.item_next(item)
            if count != len(tokens):
                return np.zeros(0, np.float32), [], count
            f.utt_synth_tokens(utt)
            words, item = [], f.relation_head(f.utt_relation(utt, b"Word"))
            while item:
                words.append((int(f.ffeature_int(item, b"R:Token.parent.hmaf_i")),
                              float(f.ffeature_float(item, b"R:SylStructure.daughter.daughter.R:Segment.p.end")),
                              float(f.ffeature_float(item, b"R:SylStructure.daughtern.daughtern.R:Segment.end"))))
                item = f.item_next(item)
            wave = f.utt_wave(utt)
            if not wave or wave.contents.num_samples <= 0:
                raise tts.TTSError(f"Flite ({spec.name}) produced no audio for {text!r}")
            w = wave.contents
            if w.sample_rate != SAMPLE_RATE or w.num_channels != 1:
                raise tts.TTSError(f"Flite voice {spec.base} gave {w.sample_rate} Hz x "
                                   f"{w.num_channels} channels, expected {SAMPLE_RATE} Hz mono")
            audio = np.ctypeslib.as_array(w.samples, shape=(w.num_samples,)).astype(np.float32) / 32768.0
        finally:
            f.delete_utterance(utt)
    return audio, words, count


class FliteEngine:
    """Flite behind the common engine interface (in-process; nothing to start or stop)."""

    name = "flite"

    def synthesize(self, segments: str | Sequence[tts.Segment | str], voice: str = "slt", *,
                   utterance: tts.Prosody | None = None, sample_rate: int | None = 16000,
                   lead_s: float = 0.0, trail_s: float = 0.0, noise_dbfs: float | None = None,
                   seed: int = 0) -> tts.Synthesis:
        """Same contract as :func:`hmaf.corpora.tts.synthesize`, for Flite voices."""
        spec = parse_voice(voice)
        transcript, tokens = shaping.tokens_of(segments)
        utt = utterance or tts.Prosody()
        rate = shaping.rate_factor(utt.rate) * spec.rate_factor
        shift = shaping.percent_factor(utt.pitch) * spec.pitch_factor
        spread = max(0.05, shaping.percent_factor(utt.range))
        native = spec.kind != "spamf0"  # whether Flite's F0 model takes the pitch settings
        audio, raw_words, count = _raw(spec, transcript, tokens, 1.0 / rate,
                                       shift if native else 1.0, spread if native else 1.0)
        if count != len(tokens):
            raise tts.TTSError(f"Flite split {transcript!r} into {count} tokens, expected {len(tokens)}")
        spans = shaping.token_spans(raw_words, len(tokens))
        if not native or (spec.kind == "cg" and any(t.pitch != 1.0 for t in tokens)):
            # Durations were stretched by Flite itself: PSOLA only moves the pitch.
            audio, spans = shaping.psola(audio, spans, [dataclasses.replace(t, duration=1.0) for t in tokens],
                                           1.0 if native else shift, 1.0 if native else spread)
        audio = shaping.level(audio, shaping.REFERENCE_DBFS) * shaping.percent_factor(utt.volume)
        audio = shaping.soft_limit(shaping.word_gain(audio, spans, tokens))
        if sample_rate and sample_rate != SAMPLE_RATE:
            audio = tts._resample(audio, SAMPLE_RATE, sample_rate)
        out_rate = sample_rate or SAMPLE_RATE
        audio, lead = tts.frame_speech(audio, out_rate, lead_s=lead_s, trail_s=trail_s,
                                       noise_dbfs=noise_dbfs, seed=seed)
        words, untimed, offset = [], [], lead / out_rate
        for token, span in zip(tokens, spans):
            word = tts.transcript_words(token.text)
            if not word:
                continue  # punctuation only: not a transcript word
            if span is None:
                untimed.append(word[0])
            else:
                words.append(tts.WordTiming(word[0], round(offset + span[0], 5), round(offset + span[1], 5)))
        return tts.Synthesis(audio=audio, sample_rate=out_rate, transcript=transcript, words=words,
                             untimed=untimed, stray=[], ssml=f"flite {spec.name}: {transcript}",
                             voice=voice)

    def close(self) -> None:
        """Nothing to release: the library stays loaded for the process's other engines."""

    def __enter__(self) -> "FliteEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
