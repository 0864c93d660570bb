"""A trained model on new speech: ``Predictor.from_workdir(W)(audio, text)``.

The recording goes through :func:`hmaf.data.utterance.preprocess_utterance`, the very
function corpus preparation used (decode, ASR when no text is given, forced word
alignment, per-word MFSC frames with the corpus's ``l_max`` and long-word rule); words
map to ids with the training corpus's ``vocab.txt`` (unknown words -> ``<unk>``), which
the trainer copies to ``W/corpus/``. A model trained with ``punctuation`` gets each
word's punctuation mark from the text exactly as prepare computed it
(:func:`hmaf.data.text.word_marks`; none for recognised words). The result holds the
label, the class probabilities (temperature-scaled when the stage has a
``calibration.json``), an unfamiliar-input score and flag (ditto), and every word-level
attention of the model (Figure 3).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hmaf.batch import FRAME_DIM, UNK_ID
from hmaf.calibration import CALIBRATION_FILE, softmax
from hmaf.data.align import DEFAULT_BOUNDARIES
from hmaf.data.layout import LAYOUT_FILE, BatchLayout
from hmaf.data.text import word_marks as marks_of
from hmaf.data.utterance import PreprocessError, Utterance, preprocess_utterance
from hmaf.data.vocab import Vocab
from hmaf.unfamiliar import Features, UnfamiliarDetector, input_statistics

# Word-level attentions in Figure 3 order: text, audio word-level, shared, fine-tuned.
WORD_ATTENTIONS = ("t_alpha", "w_alpha", "s_alpha", "u_alpha")
# More than this share of a prediction's words outside the vocabulary earns a warning.
MOSTLY_UNKNOWN = 0.5

__all__ = ["Prediction", "Predictor", "PreprocessError", "ProfileError", "WORD_ATTENTIONS", "utterance_batch"]


class ProfileError(ValueError):
    """A speaker profile that does not fit the model (its width)."""


@dataclasses.dataclass
class Prediction:
    """One utterance's prediction.

    Attributes:
      label: the predicted class; probabilities: class -> probability.
      words: the N aligned words; unknown_words: those not in the training vocabulary.
      word_start, word_end: N times in seconds.
      attention: name -> N weights for each word-level attention the model has
        (``t_alpha``, ``w_alpha``; ``s_alpha`` for VF/FAF; ``u_alpha`` for FAF).
      frame_attention: on request, N lists of ``f_alpha`` (one weight per frame of
        the word); else None.
      calibrated: the probabilities are temperature-scaled (the stage has a
        ``calibration.json``); else they are the raw softmax.
      unfamiliar_score: the stage's unfamiliar-input score (higher = less like the
        training data; ``unfamiliar_kind`` names it, see :mod:`hmaf.unfamiliar`), None
        without calibration.
      unfamiliar: the score is above the threshold chosen on validation for a 5 %
        false-alarm rate; None without calibration.
      unfamiliar_kind: "energy", "mahalanobis", "input" or "combined"; None without
        calibration.
      normalisation: for a model with ``audio_norm="speaker"``, whose statistics
        normalised the audio: "profile" (a given speaker profile, or the speaker's
        statistics over a manifest's recordings) or "utterance" (the recording's own);
        None for other models.
    """

    audio: str
    label: str
    probabilities: dict[str, float]
    words: list[str]
    unknown_words: list[str]
    word_start: list[float]
    word_end: list[float]
    transcript: str
    transcript_auto: bool
    attention: dict[str, list[float]]
    frame_attention: list[list[float]] | None = None
    calibrated: bool = False
    unfamiliar_score: float | None = None
    unfamiliar: bool | None = None
    unfamiliar_kind: str | None = None
    normalisation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def utterance_batch(word_ids: Sequence[np.ndarray], frames: Sequence[Sequence[np.ndarray]], *,
                    layout: BatchLayout | None = None,
                    word_marks: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Padded batch (see :mod:`hmaf.batch`) of utterances, shaped by ``layout`` (the
    training config's, see :func:`layout_for`; default: N and L rounded up to 8 and 16).

    Args:
      word_ids: per utterance int32 ``[N_u]``.
      frames: per utterance N_u arrays ``[n_i, M]``.
      word_marks: per utterance N_u punctuation mark ids (models with punctuation), or None.

    Returns:
      ``word_ids`` ``[B, N]``, ``word_mask`` ``[B, N]``, ``frames`` ``[B, N, L, M]``,
      ``frame_mask`` ``[B, N, L]``, ``label`` zeros ``[B]`` (``word_marks`` ``[B, N]`` when
      given, and the packing arrays when the layout packs).
    """
    layout = layout or BatchLayout(batch_size=len(word_ids))
    return layout.utterance_batch(word_ids, frames, word_marks)


def layout_for(workdir: str | os.PathLike, config) -> BatchLayout:
    """The batch layout training used (``W/corpus/layout.json``, written by the trainer):
    the same padding and packing. A workdir without it gets the padding of its config."""
    path = Path(workdir) / "corpus" / LAYOUT_FILE
    if path.exists():
        return BatchLayout(**json.loads(path.read_text()))
    data = config.get("data", {})
    return BatchLayout(batch_size=int(config.get("batch_size", 8)), pad_words_to=int(data.get("pad_words_to", 8)),
                       pad_frames_to=int(data.get("pad_frames_to", 0) or 16))


def _check_profile(model, profile: tuple[np.ndarray, np.ndarray]) -> None:
    """Raises :class:`ProfileError` for a 64-column profile and a model that reads the prosody columns."""
    if getattr(model, "prosody", False) and np.shape(profile[0])[-1] != FRAME_DIM:
        raise ProfileError(f"the speaker profile holds {np.shape(profile[0])[-1]} columns but this model "
                           f"reads {FRAME_DIM} (64 log-mel bands and the prosody columns): make the profile "
                           "again from a corpus prepared with this version (docs/augmentation.md)")


class Predictor:
    """A restored model plus the corpus facts inference needs.

    Args:
      model, variables: as :func:`hmaf.checkpoint.load` returns them.
      vocab: the training corpus's vocabulary.
      label_names: class names, index = class id.
      l_max, long_word_rule: the training corpus's frame settings (``dataset.json``).
      aligner: word aligner for recordings without word timings, "aeneas", "pocketsphinx"
        or "auto" (:mod:`hmaf.data.align`); default the training corpus's.
      boundaries: where pocketsphinx's word boundaries end up, "hmm" or "signal"
        (:data:`hmaf.data.align.BOUNDARIES`); :meth:`from_workdir` defaults to the
        training corpus's ("hmm" for a corpus prepared before the setting existed).
      calibration: the stage's :func:`hmaf.calibration.calibrate` record, or None
        (raw probabilities, no unfamiliar-input flag).
      unfamiliar: the stage's :class:`hmaf.unfamiliar.UnfamiliarDetector`; default: the
        energy score of ``calibration`` (what a stage trained before the feature-space
        scores has).
      speaker_profile: (mean float32 ``[M]``, std float32 ``[M]``) of every frame column
        for the speaker of every recording (:func:`hmaf.data.normalize.load_profile`),
        for models with ``audio_norm="speaker"``; None: each utterance's own statistics
        stand in. M = 67 (bands and prosody columns); a 64-column profile (made before
        the prosody columns) serves only models with ``prosody=False``.

    Raises:
      ProfileError: a 64-column profile for a model that reads the prosody columns.
    """

    def __init__(self, model, variables, vocab: Vocab, label_names: Sequence[str], *, l_max: int = 100,
                 long_word_rule: str = "subsample", aligner: str = "auto", boundaries: str = DEFAULT_BOUNDARIES,
                 layout: BatchLayout | None = None,
                 calibration: Mapping[str, Any] | None = None,
                 speaker_profile: tuple[np.ndarray, np.ndarray] | None = None,
                 unfamiliar: UnfamiliarDetector | None = None):
        from hmaf.eval_step import make_eval_step

        self.model = model
        self.variables = variables
        self.vocab = vocab
        self.label_names = list(label_names)
        self.l_max = int(l_max)
        self.long_word_rule = long_word_rule
        self.aligner = aligner
        self.boundaries = boundaries
        self.layout = layout
        self.calibration = dict(calibration) if calibration else None
        if unfamiliar is None and self.calibration is not None:
            unfamiliar = UnfamiliarDetector.from_energy(self.calibration)
        self.unfamiliar = unfamiliar
        if speaker_profile is not None:
            _check_profile(model, speaker_profile)
        self.speaker_profile = speaker_profile
        self._warned_own_stats = False
        self._warned_unknown = False
        self._eval_step = make_eval_step(model, with_attention=True)

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, stage: str | None = None,
                     aligner: str | None = None, boundaries: str | None = None,
                     speaker_profile: tuple[np.ndarray, np.ndarray] | None = None) -> "Predictor":
        """Restores the best checkpoint of ``workdir`` (the last stage trained, or ``stage``)
        with the corpus vocabulary and labels saved beside it in ``workdir/corpus``."""
        from hmaf import checkpoint

        workdir = Path(workdir)
        corpus = workdir / "corpus"
        missing = [name for name in ("dataset.json", "vocab.txt") if not (corpus / name).exists()]
        if missing:
            raise FileNotFoundError(
                f"{corpus} lacks {', '.join(missing)}: inference needs the training corpus's vocabulary and "
                f"labels, which hmaf.train copies there when it trains on a prepared corpus")
        meta = json.loads((corpus / "dataset.json").read_text())
        model, variables, config = checkpoint.load(workdir, stage)
        calibration_path = checkpoint.find_stage_dir(workdir, stage) / CALIBRATION_FILE
        calibration = json.loads(calibration_path.read_text()) if calibration_path.exists() else None
        unfamiliar = (UnfamiliarDetector.load(calibration, calibration_path.parent)
                      if calibration is not None else None)
        return cls(model, variables, Vocab.load(corpus / "vocab.txt"), meta["label_names"],
                   l_max=meta.get("l_max", 100), long_word_rule=meta.get("long_word_rule", "subsample"),
                   aligner=aligner or meta.get("aligner", "auto"),
                   boundaries=boundaries or meta.get("boundaries", "hmm"), layout=layout_for(workdir, config),
                   calibration=calibration, speaker_profile=speaker_profile, unfamiliar=unfamiliar)

    def preprocess(self, audio: str | os.PathLike, text: str | None = None, *,
                   word_timings: Sequence[Sequence[object]] | None = None) -> Utterance:
        """The training preprocessing of one recording; raises
        :class:`hmaf.data.utterance.PreprocessError` naming the file and the problem."""
        return preprocess_utterance(audio, text, l_max=self.l_max, long_word_rule=self.long_word_rule,
                                    word_timings=word_timings, aligner=self.aligner, boundaries=self.boundaries)

    def predict_utterances(self, utterances: Sequence[Utterance], *, frame_attention: bool = False,
                           audio: Sequence[str] | None = None,
                           speaker_profile: tuple[np.ndarray, np.ndarray] | None = None) -> list[Prediction]:
        """Predictions for already preprocessed utterances (one jitted call).
        ``speaker_profile``: (mean, std) of these utterances' speaker, used instead of the
        predictor's ``speaker_profile`` (the same form, see the class docstring)."""
        ids = [self.vocab.ids(u.words) for u in utterances]
        self._warn_unknown(ids)
        batch = utterance_batch(ids, [u.frames for u in utterances], layout=self.layout,
                                word_marks=self._word_marks(utterances))
        if speaker_profile is not None:  # the predictor's own was checked when it was made
            _check_profile(self.model, speaker_profile)
        profile = self.speaker_profile if speaker_profile is None else speaker_profile
        speaker_norm = getattr(self.model, "audio_norm", None) == "speaker"
        if profile is not None:  # one speaker's statistics on every row
            rows = batch["word_ids"].shape[0]
            batch["band_mean"], batch["band_std"] = (np.tile(np.asarray(v, np.float32)[None], (rows, 1))
                                                     for v in profile)
        elif speaker_norm and not self._warned_own_stats:
            # Measured: a speaker-normalised model fed each utterance's own statistics
            # loses much of its accuracy (docs/experiments.md); say so rather than fail quietly.
            logging.warning("this model normalises audio per speaker and no speaker profile was given: "
                            "each utterance's own statistics stand in, which is much less accurate; pass "
                            "speaker_profile= (hmaf.predict --speaker_profile, or a --manifest with a speaker "
                            "column and several recordings per speaker; docs/augmentation.md)")
            self._warned_own_stats = True
        out = self._eval_step(self.variables, batch)
        out = {k: np.asarray(v) for k, v in out.items()}
        if self.calibration is not None:
            out["probs"] = softmax(out["logits"], float(self.calibration["temperature"]))
            rows = len(utterances)  # the layout may pad the batch with empty rows
            features = Features(out["logits"][:rows], out["representation"][:rows],
                                input_statistics(batch["frames"][:rows], batch["frame_mask"][:rows],
                                                 batch["word_mask"][:rows]))
            scores, flags = self.unfamiliar(features)
        predictions = []
        for b, utt in enumerate(utterances):
            n = len(utt.words)
            probs = out["probs"][b]
            prediction = Prediction(
                audio=audio[b] if audio else "", label=self.label_names[int(np.argmax(probs))],
                probabilities={name: float(p) for name, p in zip(self.label_names, probs)},
                words=list(utt.words), unknown_words=[w for w, i in zip(utt.words, ids[b]) if i == UNK_ID],
                word_start=[float(t) for t in utt.word_start], word_end=[float(t) for t in utt.word_end],
                transcript=utt.transcript, transcript_auto=bool(utt.transcript_auto),
                attention={k: [float(a) for a in out[k][b, :n]] for k in WORD_ATTENTIONS if k in out})
            if self.calibration is not None:
                prediction.calibrated = True
                prediction.unfamiliar_score, prediction.unfamiliar = float(scores[b]), bool(flags[b])
                prediction.unfamiliar_kind = self.unfamiliar.score
            if speaker_norm:
                prediction.normalisation = "utterance" if profile is None else "profile"
            if frame_attention and "f_alpha" in out:
                prediction.frame_attention = [[float(a) for a in out["f_alpha"][b, i, :len(f)]]
                                              for i, f in enumerate(utt.frames)]
            predictions.append(prediction)
        return predictions

    def _warn_unknown(self, ids: Sequence[np.ndarray]) -> None:
        """Warns (once per predictor) when most words of a call are outside the vocabulary
        of a model with a text branch: it reads them all as ``<unk>``, so its label rests
        on the audio and on what ``<unk>`` meant in training (docs/experiments.md, "Open
        vocabulary": the old text branch read it as anger)."""
        if self._warned_unknown or "text" not in self.variables.get("params", {}):
            return
        words = sum(len(i) for i in ids)
        unknown = sum(int(np.sum(i == UNK_ID)) for i in ids)
        if words and unknown > MOSTLY_UNKNOWN * words:
            logging.warning("%d of %d words are not in this model's vocabulary (%d words), so its text branch "
                            "reads them as <unk> and its labels mean little; train on a corpus with an open "
                            "vocabulary (hmaf.prepare --vocab_extra 50000, as the corpus builders do)",
                            unknown, words, len(self.vocab.words))
            self._warned_unknown = True

    def _word_marks(self, utterances: Sequence[Utterance]) -> list[list[int]] | None:
        """Each utterance's punctuation marks from its text, as prepare computes them, for
        a model with ``punctuation=True``; None for a model without."""
        if not getattr(self.model, "punctuation", False):
            return None
        recognised = sum(bool(u.transcript_auto) for u in utterances)
        if recognised:
            logging.warning("this model reads punctuation, but %d of %d utterances have words from speech "
                            "recognition, which gives none: their words carry no marks (give the text for "
                            "the model's full accuracy)", recognised, len(utterances))
        return [marks_of(u.words, u.transcript, u.transcript_auto) for u in utterances]

    def __call__(self, audio: str | os.PathLike, text: str | None = None, *,
                 word_timings: Sequence[Sequence[object]] | None = None,
                 frame_attention: bool = False) -> Prediction:
        """Predicts one recording. ``text`` None: speech recognition supplies the words.

        Raises:
          PreprocessError: missing or unreadable file (reason ``unreadable_audio``),
            empty or silent audio, text with no alignable words (``no_words``), ...
        """
        utterance = self.preprocess(audio, text, word_timings=word_timings)
        return self.predict_utterances([utterance], frame_attention=frame_attention,
                                       audio=[os.fspath(audio)])[0]
