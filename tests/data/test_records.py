"""Round trip of the TFRecord example format."""

import numpy as np
import pytest
import tensorflow as tf

from hmaf.data import records


def _example(rng, num_frames=(3, 1, 5)):
    words = [f"w{i}" for i in range(len(num_frames))]
    frames = [rng.standard_normal((n, 64)).astype(np.float32) for n in num_frames]
    starts = np.arange(len(words)) * 0.25
    return dict(utt_id="spk1/utt 7", speaker="spk1", group="session1", split="dev", label=2,
                label_name="sad", words=words, frames=frames, word_start=starts,
                word_end=starts + 0.2, transcript="W0 w1, w2!", transcript_auto=True)


def test_round_trip_keeps_every_field():
    rng = np.random.default_rng(0)
    ex = _example(rng)
    out = records.decode_example(records.serialize_example(**ex))
    for key in ("utt_id", "speaker", "group", "split", "label", "label_name", "words", "transcript"):
        assert out[key] == ex[key], key
    assert out["transcript_auto"] is True
    np.testing.assert_array_equal(out["num_frames"], [3, 1, 5])
    for got, want in zip(out["frames"], ex["frames"]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(out["word_start"], ex["word_start"], rtol=1e-6)
    np.testing.assert_allclose(out["word_end"], ex["word_end"], rtol=1e-6)


def test_defaults_group_is_speaker_and_transcript_is_words():
    ex = _example(np.random.default_rng(1))
    del ex["group"], ex["transcript"], ex["split"], ex["transcript_auto"]
    out = records.decode_example(records.serialize_example(**ex))
    assert out["group"] == "spk1"
    assert out["transcript"] == "w0 w1 w2"
    assert out["split"] == ""
    assert out["transcript_auto"] is False


def test_parse_example_is_dense_and_zero_padded_in_a_dataset():
    rng = np.random.default_rng(2)
    ex = _example(rng, num_frames=(2, 6))
    ds = tf.data.Dataset.from_tensor_slices([records.serialize_example(**ex)]).map(records.parse_example)
    parsed = next(iter(ds))
    frames = parsed["frames"].numpy()
    assert frames.shape == (2, 6, 64) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[0, :2], ex["frames"][0])
    assert np.all(frames[0, 2:] == 0)
    assert parsed["label"].dtype == tf.int32
    header = records.parse_header(tf.constant(records.serialize_example(**ex)))
    assert header["group"].numpy() == b"session1"
    np.testing.assert_array_equal(header["num_frames"].numpy(), [2, 6])


def test_frames_with_prosody_columns_and_records_from_before_them():
    rng = np.random.default_rng(3)
    ex = _example(rng)
    ex["frames"] = [rng.standard_normal((n, 67)).astype(np.float32) for n in (3, 1, 5)]
    out = records.decode_example(records.serialize_example(**ex))
    for got, want in zip(out["frames"], ex["frames"]):
        np.testing.assert_array_equal(got, want)
    # a record written before the prosody columns has no frame_dim field: 64 columns
    old = _example(rng)
    proto = tf.train.Example.FromString(records.serialize_example(**old))
    del proto.features.feature["frame_dim"]
    out = records.decode_example(proto.SerializeToString())
    assert [f.shape for f in out["frames"]] == [(3, 64), (1, 64), (5, 64)]
    np.testing.assert_array_equal(out["frames"][2], old["frames"][2])
    with pytest.raises(records.RecordError, match="the same for every word"):
        records.serialize_example(**dict(ex, frames=[ex["frames"][0], old["frames"][1], ex["frames"][2]]))


@pytest.mark.parametrize("change, message", [
    (dict(words=[]), "at least one word"),
    (dict(word_end=[0.1]), "3 words but 3 frame arrays, 3 starts, 1 ends"),
    (dict(frames=[np.zeros((3, 64)), np.zeros((0, 64)), np.zeros((5, 64))]), "word 1"),
    (dict(frames=[np.zeros((3, 40)), np.zeros((1, 64)), np.zeros((5, 64))]), "expected"),
    (dict(frames=[np.full((3, 64), np.nan), np.zeros((1, 64)), np.zeros((5, 64))]), "NaN"),
    (dict(words=["a", "", "c"]), "word 1 is empty"),
])
def test_bad_examples_are_refused_naming_the_utterance(change, message):
    ex = {**_example(np.random.default_rng(3)), **change}
    with pytest.raises(records.RecordError, match="spk1/utt 7") as info:
        records.serialize_example(**ex)
    assert message in str(info.value)


def test_truncated_frames_fail_when_parsed():
    ex = _example(np.random.default_rng(4))
    proto = tf.train.Example.FromString(records.serialize_example(**ex))
    blob = proto.features.feature["frames"].bytes_list.value[0]
    proto.features.feature["frames"].bytes_list.value[0] = blob[:-256]
    with pytest.raises(tf.errors.InvalidArgumentError, match="frames byte length"):
        records.parse_example(tf.constant(proto.SerializeToString()))


def test_records_import_tensorflow_without_keras_which_still_loads_on_use():
    """records skips the Keras import TensorFlow makes eagerly (startup time) and leaves
    nothing behind that stops tf.keras from loading later."""
    import subprocess
    import sys

    code = ("import sys; import hmaf.data.records; assert 'keras' not in sys.modules, 'keras imported'; "
            "assert 'keras.src.optimizers' not in sys.modules; "
            "import tensorflow as tf; tf.keras.layers.Dense(2); assert 'keras' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
