"""Speech synthesis with festival, timed word by word from festival's utterance structure.

One ``festival --pipe`` process per :class:`FestivalEngine` stays up and answers one
Scheme call per utterance (:data:`SCHEME` defines it at start-up); each call writes a
16 kHz RIFF file and prints one line per word. Word timings are festival's own:

* a word's **start** is the start of its first segment (``segment_start`` of the first
  segment of its first syllable), its **end** is the Word relation's ``word_end``;
  pauses are ``pau`` segments outside every word, so a clause's pause is never in a word;
* a transcript token (whitespace-separated, as :func:`hmaf.corpora.tts.transcript_words`
  counts them) spoken as several festival words ("42" -> forty two) spans all of them.

Voices (:data:`VOICES`): ``kal`` and ``ked`` (diphone, 16 kHz) and ``slt`` (HTS,
resampled to 16 kHz). A voice name may carry a persona suffix, ``kal+p1``: a stable
pitch and rate offset (:data:`PERSONAS`) that makes a further speaker of the same voice.

Delivery, from the same percentages as espeak-ng's SSML (:class:`hmaf.corpora.tts.Prosody`):

* rate: diphone voices through ``Duration_Stretch`` (= 100 / rate%), HTS through the
  engine's speed option ``-r`` (festival's HTS module ignores ``Duration_Stretch``);
* pitch mean and range: diphone voices by rewriting the F0 targets after ``Int_Targets``
  (``f0' = mean*(1+pitch) + (f0-mean)*(1+range)``; rather than changing ``int_lr_params``,
  this works whatever intonation method a voice uses and scales the range around the
  utterance's own mean); the HTS module ignores targets and its
  F0 options, so for ``slt`` the same formula is applied to the waveform's pitch contour
  by Praat's PSOLA (:func:`hmaf.corpora.shaping.psola`);
* volume: the waveform is scaled to a fixed active-speech level
  (:data:`hmaf.corpora.shaping.REFERENCE_DBFS`, espeak-ng's typical level, so that loudness
  means the same for every engine), then by ``1 + volume%``; peaks above 0.8 are bent
  towards 1 (:func:`hmaf.corpora.shaping.soft_limit`), not clipped;
* word emphasis (a segment's own prosody: pitch, rate, volume): diphone voices stretch the
  segments of the emphasised words after the Duration module and raise their F0 targets;
  for HTS, PSOLA stretches and raises the words' span; the gain is applied to the span
  (10 ms ramps) for all voices.

Deterministic: every request sets all parameters it uses, so the same input gives the
same bytes whatever was synthesised before (tested).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import threading
import weakref
from typing import Sequence

import numpy as np

from hmaf.corpora import shaping, tts
from hmaf.corpora.shaping import (MIN_F0, REFERENCE_DBFS, Token, level, percent_factor, psola,
                                  rate_factor, soft_limit, token_spans, tokens_of, word_gain)

SAMPLE_RATE = 16000
# name -> (festival voice function, kind); kind "diphone" or "hts" decides the delivery path.
VOICES = {
    "kal": ("voice_kal_diphone", "diphone"),
    "ked": ("voice_ked_diphone", "diphone"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "hts"),
}
# persona -> (pitch factor, rate factor): stable offsets that make more speakers per voice.
PERSONAS = {
    "p1": (1.12, 0.94),
    "p2": (0.90, 1.06),
    "p3": (1.22, 1.02),
    "p4": (0.82, 0.97),
}
REQUEST_TIMEOUT_S = 60.0
DONE = "HMAF-DONE"

# festival's Scheme (SIOD) has no let* and no max: hence nested lets and hmaf-max.
SCHEME = r"""
(define (hmaf-max a b) (if (> a b) a b))

(define (hmaf-top utt rel)
  (let ((i (utt.relation.first utt rel)) (out nil))
    (while i (set! out (cons i out)) (set! i (item.next i)))
    (reverse out)))

(define (hmaf-emph item)
  (item.feat item "R:SylStructure.parent.parent.R:Token.parent.hmaf_dur"))

(define (hmaf-stretch-words utt)
  "Stretches the segments of emphasised words; every later segment moves with them."
  (let ((old-prev 0) (new-prev 0))
    (mapcar
     (lambda (s)
       (let ((old (item.feat s "end")) (f (hmaf-emph s)) (d 0))
         (set! d (- old old-prev))
         (if (> f 0) (set! d (* d f)))
         (set! old-prev old)
         (set! new-prev (+ new-prev d))
         (item.set_feat s "end" new-prev)))
     (utt.relation.items utt 'Segment))))

(define (hmaf-retarget utt shift range)
  "f0' = mean*shift + (f0 - mean)*range, times the word's emphasis factor."
  (let ((sum 0) (n 0) (mean 0))
    (mapcar (lambda (s) (mapcar (lambda (t) (set! sum (+ sum (item.feat t "f0"))) (set! n (+ n 1)))
                                (item.daughters s)))
            (hmaf-top utt 'Target))
    (if (> n 0) (set! mean (/ sum n)))
    (mapcar
     (lambda (s)
       (let ((f (item.feat s "R:SylStructure.parent.parent.R:Token.parent.hmaf_f0")))
         (if (not (> f 0)) (set! f 1))
         (mapcar (lambda (t)
                   (item.set_feat t "f0"
                     (hmaf-max MINF0 (* f (+ (* mean shift) (* (- (item.feat t "f0") mean) range))))))
                 (item.daughters s))))
     (hmaf-top utt 'Target))))

(define (hmaf-say text emph stretch hts-rate shift range path)
  "emph: ((token-index duration-factor f0-factor) ...), token indices from 0."
  (Parameter.set 'Duration_Stretch stretch)
  (if hmaf-hts-base
      (set! hts_engine_params (append hmaf-hts-base (list (list "-r" hts-rate)))))
  ;; Utterance is a special form (arguments unevaluated): build the call.
  (let ((utt (eval (list 'Utterance 'Text text))) (k 0))
    (Initialize utt) (Text utt)
    (mapcar (lambda (tok)
              (let ((e (assoc k emph)))
                (item.set_feat tok "hmaf_i" k)
                (if e (begin (item.set_feat tok "hmaf_dur" (cadr e))
                             (item.set_feat tok "hmaf_f0" (car (cddr e))))))
              (set! k (+ k 1)))
            (hmaf-top utt 'Token))
    (Token_POS utt) (Token utt) (POS utt) (Phrasify utt) (Word utt) (Pauses utt)
    (Intonation utt) (PostLex utt) (Duration utt)
    (hmaf-stretch-words utt)
    (Int_Targets utt)
    (hmaf-retarget utt shift range)
    (Wave_Synth utt)
    (utt.wave.resample utt RATE)
    (utt.save.wave utt path 'riff)
    (format t "HMAF-T %d\n" k)
    (mapcar (lambda (w)
              (format t "HMAF-W\t%s\t%s\t%s\t%s\n" (item.feat w "R:Token.parent.hmaf_i")
                      (item.feat w "R:SylStructure.daughter1.daughter1.segment_start")
                      (item.feat w "word_end") (item.name w)))
            (utt.relation.items utt 'Word))))

(define hmaf-hts-base nil)

(define (hmaf-voice fn hts)
  (eval (list fn))
  (set! hmaf-hts-base (if hts hts_engine_params nil)))
""".replace("MINF0", str(MIN_F0)).replace("RATE", str(SAMPLE_RATE))


def available() -> bool:
    """Whether the festival binary is on PATH."""
    return shutil.which("festival") is not None


def parse_voice(voice: str) -> shaping.VoiceSpec:
    """``kal``, ``ked``, ``slt``, optionally with a persona: ``kal+p1``."""
    return shaping.parse_voice("festival", voice, VOICES, PERSONAS)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FestivalEngine:
    """One ``festival --pipe`` process (started lazily, thread-safe, reusable)."""

    name = "festival"

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._voice: str | None = None
        self._tmp: str | None = None
        self._buffer = b""
        self._errors = ""
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> None:
        if not available():
            raise tts.TTSError("festival not found: install the Debian packages festival "
                               "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts (tools/setup.sh)")
        self._tmp = tempfile.mkdtemp(prefix="hmaf-festival-")
        self._proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      close_fds=True)
        self._finalizer = weakref.finalize(self, _shut_down, self._proc, self._tmp)
        self._buffer = b""
        self._voice = None
        self._call(SCHEME, "festival start-up")

    def _call(self, scheme: str, what: str) -> list[str]:
        """Sends Scheme, returns the stdout lines it printed; raises with festival's stderr.

        What the call wrote to stderr is left in ``self._errors`` (drained after every
        call, so that festival never blocks on a full stderr pipe).
        """
        proc = self._proc
        try:
            # festival buffers a piped stdout: flush after the end marker.
            proc.stdin.write((scheme + f'\n(format t "\\n{DONE}\\n")\n(fflush nil)\n').encode())
            proc.stdin.flush()
        except BrokenPipeError:
            err = self._drain_stderr()
            self.close()
            raise tts.TTSError(f"festival exited before {what}: {err}") from None
        lines: list[str] = []
        while True:
            while b"\n" not in self._buffer:
                ready, _, _ = select.select([proc.stdout], [], [], REQUEST_TIMEOUT_S)
                chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
                if not chunk:
                    err = self._drain_stderr()
                    self.close()
                    raise tts.TTSError(f"festival {'timed out' if not ready else 'exited'} "
                                       f"during {what}: {err}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            text = line.decode("utf-8", "replace")
            if text == DONE:
                self._errors = self._drain_stderr()
                return lines
            if text:
                lines.append(text)

    def _drain_stderr(self) -> str:
        """What festival wrote to stderr since the last drain (its last 500 characters)."""
        proc = self._proc
        if proc is None:
            return ""
        out = b""
        while select.select([proc.stderr], [], [], 0)[0]:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace").strip()[-500:]

    def _raw(self, spec: shaping.VoiceSpec, text: str, tokens: Sequence[Token], stretch: float,
             hts_rate: float, shift: float, spread: float) -> tuple[np.ndarray, list[tuple[int, float, float]], int]:
        """festival's 16 kHz audio, [(token index, start, end)] per word, token count."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            function = VOICES[spec.base][0]  # the voice's festival function
            if self._voice != function:
                self._call(f"(hmaf-voice '{function} {'t' if spec.kind == 'hts' else 'nil'})",
                           f"loading voice {function}")
                self._voice = function
            path = os.path.join(self._tmp, "utt.wav")
            # HTS recomputes durations and F0 itself: its emphasis is done by psola.
            emph = " ".join(f"({k} {t.duration:.4f} {t.pitch:.4f})" for k, t in enumerate(tokens)
                            if spec.kind == "diphone" and (t.duration != 1.0 or t.pitch != 1.0))
            if os.path.exists(path):
                os.remove(path)
            lines = self._call(
                f"(hmaf-say {_scheme_string(text)} '({emph}) {stretch:.4f} {hts_rate:.4f} "
                f"{shift:.4f} {spread:.4f} {_scheme_string(path)})", f"synthesis of {text!r}")
            if not os.path.exists(path):
                raise tts.TTSError(f"festival ({spec.name}) wrote no audio for {text!r}: "
                                   f"{self._errors or lines[-3:]}")
            import soundfile as sf

            audio, rate = sf.read(path, dtype="float32")
        if rate != SAMPLE_RATE:
            raise tts.TTSError(f"festival wrote {rate} Hz, expected {SAMPLE_RATE}")
        words, count = [], -1
        for line in lines:
            if line.startswith("HMAF-T "):
                count = int(line.split()[1])
            elif line.startswith("HMAF-W\t"):
                _, index, start, end, _ = line.split("\t", 4)
                words.append((int(float(index)), float(start), float(end)))
        return audio, words, count

    def synthesize(self, segments: str | Sequence[tts.Segment | str], voice: str = "kal", *,
                   utterance: tts.Prosody | None = None, sample_rate: int | None = 16000,
                   lead_s: float = 0.0, trail_s: float = 0.0, noise_dbfs: float | None = None,
                   seed: int = 0) -> tts.Synthesis:
        """Same contract as :func:`hmaf.corpora.tts.synthesize`, for festival voices."""
        spec = parse_voice(voice)
        transcript, tokens = tokens_of(segments)
        utt = utterance or tts.Prosody()
        rate = rate_factor(utt.rate) * spec.rate_factor
        shift = percent_factor(utt.pitch) * spec.pitch_factor
        spread = max(0.05, percent_factor(utt.range))
        diphone = spec.kind == "diphone"
        audio, raw_words, count = self._raw(
            spec, transcript, tokens, stretch=1.0 / rate, hts_rate=rate,
            shift=shift if diphone else 1.0, spread=spread if diphone else 1.0)
        if count != len(tokens):
            raise tts.TTSError(f"festival split {transcript!r} into {count} tokens, expected "
                               f"{len(tokens)}")
        spans = token_spans(raw_words, len(tokens))
        if not diphone:
            audio, spans = psola(audio, spans, tokens, shift, spread)
        audio = level(audio, REFERENCE_DBFS) * percent_factor(utt.volume)
        audio = soft_limit(word_gain(audio, spans, tokens))
        if sample_rate and sample_rate != SAMPLE_RATE:
            audio = tts._resample(audio, SAMPLE_RATE, sample_rate)
        out_rate = sample_rate or SAMPLE_RATE
        audio, lead = tts.frame_speech(audio, out_rate, lead_s=lead_s, trail_s=trail_s, noise_dbfs=noise_dbfs,
                                       seed=seed)
        words, untimed, offset = [], [], lead / out_rate
        for token, span in zip(tokens, spans):
            word = tts.transcript_words(token.text)
            if not word:
                continue  # punctuation only: not a transcript word
            if span is None:
                untimed.append(word[0])
            else:
                words.append(tts.WordTiming(word[0], round(offset + span[0], 5),
                                            round(offset + span[1], 5)))
        return tts.Synthesis(audio=audio, sample_rate=out_rate, transcript=transcript,
                             words=words, untimed=untimed, stray=[],
                             ssml=f"festival {spec.name}: {transcript}", voice=voice)

    def close(self) -> None:
        """Ends the festival process and removes its temp folder (also done at garbage
        collection or interpreter exit for an engine nobody closed)."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer, self._proc, self._tmp = None, None, None

    def __enter__(self) -> "FestivalEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shut_down(proc: subprocess.Popen, tmp: str) -> None:
    try:
        proc.stdin.close()
        proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, BrokenPipeError):
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    shutil.rmtree(tmp, ignore_errors=True)
