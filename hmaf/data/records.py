"""The TFRecord example format of a prepared corpus (one ``tf.train.Example`` per utterance).

Fields (see the common brief; this module is their single definition):

=================  =============  ===================================================
key                type           meaning
=================  =============  ===================================================
utt_id, speaker,   bytes          identifiers; ``group`` is the unit of speaker-
group, split,                     independent folds, ``split`` the manifest's split
label_name,                       (may be empty); ``augment`` is "" for an original,
transcript,                       else the resolved waveform augmentation of a
augment                           prepare-time copy (:mod:`hmaf.data.augment`,
                                  e.g. "gain:db=-3.2")
label              int64          class index into ``dataset.json`` label_names
transcript_auto    int64 (0/1)    1 when the transcript came from speech recognition
words              bytes [N]      normalised words (the model's tokens)
num_frames         int64 [N]      frames kept per word, each >= 1
frames             bytes          raw little-endian float32 ``[sum(num_frames), M]``
frame_dim          int64          M: 67 (64 log-mel bands, then the prosody columns of
                                  :mod:`hmaf.data.prosody`); absent, and M = 64, in
                                  corpora prepared before the prosody columns
word_start,        float [N]      word boundaries in seconds
word_end
word_marks         int64 [N]      the punctuation mark after each word in the
                                  transcript (:func:`hmaf.data.text.word_marks`,
                                  ids of ``hmaf.batch.MARK_NAMES``); empty [0]
                                  in corpora prepared before it existed
=================  =============  ===================================================

Word ids are not stored: the input pipeline maps ``words`` through ``vocab.txt``.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# `import tensorflow` also imports keras.src.optimizers eagerly (for SavedModel
# registrations), which loads Keras and scikit-learn: 1.4-1.7 s of its 4.1 s on the 2-core
# VM, paid by every `hmaf.prepare` and training process. hmaf uses TensorFlow for TFRecords
# and tf.data only, so that import is made to fail (TensorFlow passes over an ImportError
# there); tf.keras still loads on first use.
_SKIPPED = "keras.src.optimizers"
if "tensorflow" not in sys.modules and _SKIPPED not in sys.modules:
    sys.modules[_SKIPPED] = None  # an import of a None entry raises ImportError
try:
    import tensorflow as tf
finally:
    if _SKIPPED in sys.modules and sys.modules[_SKIPPED] is None:
        del sys.modules[_SKIPPED]

from hmaf.batch import NUM_MARKS
from hmaf.data.features import FRAME_DIMS, N_MELS

# TensorFlow is only the data side's tool: it must never hold an accelerator JAX needs.
try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # devices already initialised by an earlier import: nothing to hide now
    pass

_STRING_FIELDS = ("utt_id", "speaker", "group", "split", "label_name", "transcript", "augment")

FEATURE_SPEC = {
    **{name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in _STRING_FIELDS},
    "label": tf.io.FixedLenFeature([], tf.int64),
    "transcript_auto": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "words": tf.io.RaggedFeature(tf.string),
    "num_frames": tf.io.RaggedFeature(tf.int64),
    "frames": tf.io.FixedLenFeature([], tf.string),
    "frame_dim": tf.io.FixedLenFeature([], tf.int64, default_value=N_MELS),
    "word_start": tf.io.RaggedFeature(tf.float32),
    "word_end": tf.io.RaggedFeature(tf.float32),
    "word_marks": tf.io.RaggedFeature(tf.int64),
}

# The cheap fields a pipeline needs to select and balance examples before it decodes frames.
HEADER_SPEC = {
    "utt_id": FEATURE_SPEC["utt_id"],
    "group": FEATURE_SPEC["group"],
    "split": FEATURE_SPEC["split"],
    "augment": FEATURE_SPEC["augment"],
    "label": FEATURE_SPEC["label"],
    "num_frames": FEATURE_SPEC["num_frames"],
}


class RecordError(ValueError):
    """An example that cannot be written or read in this format."""


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def serialize_example(*, utt_id: str, speaker: str, label: int, label_name: str,
                      words: Sequence[str], frames: Sequence[np.ndarray],
                      word_start: Sequence[float], word_end: Sequence[float],
                      group: str | None = None, split: str | None = "", transcript: str | None = None,
                      transcript_auto: bool = False, augment: str = "",
                      word_marks: Sequence[int] | None = None) -> bytes:
    """Serializes one utterance to ``tf.train.Example`` bytes.

    Args:
        utt_id, speaker, label, label_name: identifiers and the class index.
        words: the N normalised words.
        frames: N arrays, word i of shape ``[num_frames_i, M]`` (num_frames_i >= 1), float32,
            M in ``FRAME_DIMS`` and the same for every word.
        word_start, word_end: N word boundaries in seconds.
        group: fold unit; defaults to ``speaker``.
        split: the manifest's split name; "" or None when the manifest gave none.
        transcript: the full transcript; defaults to the words joined by spaces.
        transcript_auto: whether the transcript came from speech recognition.
        augment: the resolved augmentation of a prepare-time copy; "" for an original.
        word_marks: N mark ids in [0, NUM_MARKS) (:func:`hmaf.data.text.word_marks`);
            None writes none (a reader then gets an empty array, as from an older corpus).

    Raises:
        RecordError: naming ``utt_id`` and the problem, for inconsistent or non-finite input.
    """
    n = len(words)
    if n == 0:
        raise RecordError(f"{utt_id}: an example needs at least one word")
    if not (len(frames) == len(word_start) == len(word_end) == n):
        raise RecordError(
            f"{utt_id}: {n} words but {len(frames)} frame arrays, {len(word_start)} starts, "
            f"{len(word_end)} ends")
    num_frames = []
    frame_dim = np.shape(frames[0])[-1] if np.ndim(frames[0]) == 2 else -1
    for i, word_frames in enumerate(frames):
        shape = np.shape(word_frames)
        if len(shape) != 2 or shape[1] != frame_dim or frame_dim not in FRAME_DIMS or shape[0] < 1:
            raise RecordError(f"{utt_id}: word {i} ({words[i]!r}) has frames of shape {shape}, expected "
                              f"[n >= 1, M] with M one of {FRAME_DIMS}, the same for every word")
        num_frames.append(shape[0])
    stacked = np.concatenate([np.asarray(f, dtype=np.float32) for f in frames], axis=0)
    if not np.all(np.isfinite(stacked)):
        raise RecordError(f"{utt_id}: frames hold NaN or inf")
    for i, word in enumerate(words):
        if not word:
            raise RecordError(f"{utt_id}: word {i} is empty")
    if word_marks is not None:
        if len(word_marks) != n:
            raise RecordError(f"{utt_id}: {n} words but {len(word_marks)} word marks")
        bad = [int(m) for m in word_marks if not 0 <= int(m) < NUM_MARKS]
        if bad:
            raise RecordError(f"{utt_id}: word marks {bad} outside [0, {NUM_MARKS})")
    feature = {
        "utt_id": _bytes([utt_id.encode()]),
        "speaker": _bytes([speaker.encode()]),
        "group": _bytes([(speaker if group is None else group).encode()]),
        "split": _bytes([(split or "").encode()]),
        "label_name": _bytes([label_name.encode()]),
        "transcript": _bytes([(" ".join(words) if transcript is None else transcript).encode()]),
        "augment": _bytes([augment.encode()]),
        "label": _ints([label]),
        "transcript_auto": _ints([int(bool(transcript_auto))]),
        "words": _bytes([w.encode() for w in words]),
        "num_frames": _ints(num_frames),
        # Explicit little-endian so records move between machines unchanged.
        "frames": _bytes([stacked.astype("<f4").tobytes()]),
        "frame_dim": _ints([frame_dim]),
        "word_start": _floats(word_start),
        "word_end": _floats(word_end),
    }
    if word_marks is not None:
        feature["word_marks"] = _ints(word_marks)
    # deterministic: protobuf map order otherwise varies between processes, and so would the shards.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def parse_header(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses only utt_id, group, split, augment, label and num_frames (no frame decoding).

    Usable inside ``tf.data.Dataset.map``; ``label`` comes back int32.
    """
    header = tf.io.parse_single_example(serialized, HEADER_SPEC)
    header["label"] = tf.cast(header["label"], tf.int32)
    header["num_frames"] = tf.cast(header["num_frames"], tf.int32)
    return header


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized example into dense tensors (a tf function for ``Dataset.map``).

    Returns:
        A dict with the string fields (scalars), ``label`` int32 [], ``transcript_auto``
        int32 [], ``words`` string [N], ``num_frames`` int32 [N], ``frames`` float32
        ``[N, L_utt, M]`` (M: the record's ``frame_dim``) with L_utt = max(num_frames) and
        zeros after each word's frames,
        ``word_start`` / ``word_end`` float32 [N], ``word_marks`` int32 [N] (or [0]
        for a record written without marks).
    """
    ex = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    num_frames = ex["num_frames"]
    flat = tf.io.decode_raw(ex["frames"], tf.float32, little_endian=True)
    total = tf.reduce_sum(num_frames)
    checks = [
        tf.debugging.assert_equal(
            tf.cast(tf.size(flat), tf.int64), total * ex["frame_dim"],
            message="frames byte length does not match sum(num_frames) * frame_dim floats"),
        tf.debugging.assert_equal(
            tf.size(num_frames), tf.size(ex["words"]),
            message="num_frames and words differ in length"),
    ]
    with tf.control_dependencies(checks):
        flat = tf.reshape(flat, [-1, ex["frame_dim"]])
    frames = tf.RaggedTensor.from_row_lengths(flat, num_frames).to_tensor()
    out = {name: ex[name] for name in _STRING_FIELDS}
    out.update(
        label=tf.cast(ex["label"], tf.int32),
        transcript_auto=tf.cast(ex["transcript_auto"], tf.int32),
        words=ex["words"],
        num_frames=tf.cast(num_frames, tf.int32),
        frames=frames,
        word_start=ex["word_start"],
        word_end=ex["word_end"],
        word_marks=tf.cast(ex["word_marks"], tf.int32),
    )
    return out


def decode_example(serialized: bytes) -> dict[str, object]:
    """Decodes serialized bytes eagerly into numpy / Python values (for tools and tests).

    Returns the fields of :func:`parse_example` with strings decoded to ``str``,
    ``words`` a ``list[str]`` and ``frames`` a list of N arrays ``[num_frames_i, M]``.
    """
    parsed = parse_example(tf.constant(serialized))
    out: dict[str, object] = {name: parsed[name].numpy().decode() for name in _STRING_FIELDS}
    out["label"] = int(parsed["label"])
    out["transcript_auto"] = bool(parsed["transcript_auto"])
    out["words"] = [w.decode() for w in parsed["words"].numpy()]
    num_frames = parsed["num_frames"].numpy()
    out["num_frames"] = num_frames
    padded = parsed["frames"].numpy()
    out["frames"] = [padded[i, :n] for i, n in enumerate(num_frames)]
    out["word_start"] = parsed["word_start"].numpy()
    out["word_end"] = parsed["word_end"].numpy()
    out["word_marks"] = parsed["word_marks"].numpy()
    return out
