"""Punctuation marks per word (config.model.punctuation): text rules, records, input
pipeline, models and inference."""

import functools
import logging

import jax
import numpy as np
import pytest

from hmaf.batch import NUM_MARKS, validate
from hmaf.data import records
from hmaf.data.fake_corpus import write_fake_corpus
from hmaf.data.layout import BatchLayout
from hmaf.data.source import CorpusError, CorpusSource, from_config
from hmaf.data.text import normalize_words, punctuated_words, word_marks
from hmaf.data.toy import random_batch
from hmaf.data.utterance import Utterance
from hmaf.data.vocab import Vocab
from hmaf.inference import Predictor
from hmaf.models import BRANCHES, build_model

N, C, S, Q, X, E = range(6)  # none, comma, stop, question, exclamation, ellipsis


@pytest.mark.parametrize("text, words, marks", [
    ("Really?!", ["really"], [X]),  # "!" beats "?"
    ("What?.. no", ["what", "no"], [Q, N]),  # "?" beats "..."
    ("Well... I guess.", ["well", "i", "guess"], [E, N, S]),
    ("so\u2026", ["so"], [E]),  # the ellipsis character (NFKC: "...")
    ("a well-known fact, right", ["a", "well", "known", "fact", "right"], [N, N, N, C, N]),
    ("I don't know - maybe; or -- not: fine", ["i", "don't", "know", "maybe", "or", "not", "fine"],
     [N, N, C, C, C, C, N]),
    ("Wait\u2014what", ["wait", "what"], [C, N]),  # em dash
    ("3.5 percent, 1,000 times at 10:30.", ["3", "5", "percent", "1", "000", "times", "at", "10", "30"],
     [N, N, C, N, N, N, N, N, S]),  # joiners between digits are no marks
    ("'Hello,' she said. \"Why?\" (Fine!)", ["hello", "she", "said", "why", "fine"], [C, N, S, Q, X]),
    ("Rock'n'roll's dead", ["rock'n'roll's", "dead"], [N, N]),  # apostrophes are no marks
    ("no punctuation here", ["no", "punctuation", "here"], [N, N, N]),
    ("... !? hi", ["hi"], [N]),  # marks before the first word belong to no word
    ("\u00c7a va\uff1f Tr\u00e8s bien\uff01", ["\u00e7a", "va", "tr\u00e8s", "bien"], [N, Q, N, X]),  # full-width
    ("\u00bfQu\u00e9? \u00a1S\u00ed!", ["qu\u00e9", "s\u00ed"], [Q, X]),  # inverted marks open, closing ones count
    ("", [], []),
])
def test_marks_of_tricky_transcripts(text, words, marks):
    assert punctuated_words(text) == (words, marks)


def test_words_are_exactly_normalize_words():
    texts = ["Hello, World!", "Don't STOP: it's rock'n'roll", "'quoted' students' books",
             "It\u2019s O\u2018Brien", "a''b", "well-known 3.5 42 x_y", "cafe\u0301", "\ufb01ne \uff21\uff22",
             "\u0928\u092e\u0938\u094d\u0924\u0947!", "wow \U0001f389 ok", "  ... !? -- ", "a.-b", "x-\u0301y",
             "'-'a'-'", "e.g. U.S.A.", "\u0645\u0631\u062d\u0628\u0627\u061f"]
    # Random strings over letters, digits, apostrophes, marks, combining signs and quotes.
    alphabet = list("ab1 '\u2019.,;:!?-\u2010\u2013\u2014\u2026\"()\u0301\u00e9\u3002\u3001\u061f\uff01_")
    rng = np.random.default_rng(0)
    texts += ["".join(rng.choice(alphabet, size=rng.integers(1, 25))) for _ in range(400)]
    for text in texts:
        words, marks = punctuated_words(text)
        assert words == normalize_words(text), text
        assert len(marks) == len(words) and all(0 <= m < NUM_MARKS for m in marks), text


def test_word_marks_match_other_words_and_ignore_recognised_text():
    assert word_marks(["yeah", "sure"], "Yeah, sure!") == [C, X]
    # Words from given timings that differ from the transcript's: matched ones keep their mark.
    assert word_marks(["kl", "five", "to", "gr"], "KL-5, to GR.") == [N, N, N, S]
    assert word_marks(["oh", "my", "god"], "Oh. My God!", transcript_auto=True) == [N, N, N]
    assert word_marks(["totally", "other"], "Nothing, alike.") == [N, N]


def _example(marks=None):
    frames = [np.ones((2, 64), np.float32)] * 3
    return dict(utt_id="u", speaker="s", label=0, label_name="a", words=["a", "b", "c"], frames=frames,
                word_start=[0.0, 0.1, 0.2], word_end=[0.1, 0.2, 0.3], transcript="A, b c?", word_marks=marks)


def test_record_round_trip_of_marks():
    out = records.decode_example(records.serialize_example(**_example([C, N, Q])))
    np.testing.assert_array_equal(out["word_marks"], [C, N, Q])
    assert out["word_marks"].size == 3
    old = records.decode_example(records.serialize_example(**_example(None)))  # as before the field
    assert old["word_marks"].shape == (0,)
    with pytest.raises(records.RecordError, match="3 words but 2 word marks"):
        records.serialize_example(**_example([C, N]))
    with pytest.raises(records.RecordError, match=r"word marks \[9\] outside"):
        records.serialize_example(**_example([C, N, 9]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("punct")
    examples = write_fake_corpus(root / "marks", num_speakers=4, per_speaker=5, seed=2, word_marks=True)
    write_fake_corpus(root / "old", num_speakers=4, per_speaker=5, seed=2)
    return root, examples


def test_pipeline_adds_marks_only_when_asked(corpus):
    root, examples = corpus
    source = CorpusSource(root / "marks", num_folds=4, batch_size=4, word_marks=True)
    seen = 0
    for batch in source.eval_batches("all"):
        validate(batch)
        assert batch["word_marks"].dtype == np.int32 and batch["word_marks"].shape == batch["word_ids"].shape
        assert not batch["word_marks"][~batch["word_mask"]].any()  # 0 at padding
        for row, utt in enumerate(batch["utt_id"]):
            ex = examples[utt.decode()]
            np.testing.assert_array_equal(batch["word_marks"][row, :len(ex["words"])], ex["word_marks"])
            seen += 1
    assert seen == len(examples)
    train = next(source.train_batches())
    assert train["word_marks"].shape == train["word_ids"].shape and train["word_marks"][train["word_mask"]].any()
    assert "word_marks" not in next(CorpusSource(root / "marks", num_folds=4, batch_size=4).eval_batches("all"))


def test_old_corpus_and_punctuation_model_is_a_clear_error(corpus):
    root, _ = corpus
    with pytest.raises(CorpusError, match=r"old was prepared without punctuation marks.*re-run python -m hmaf.prepare"):
        CorpusSource(root / "old", num_folds=4, word_marks=True)


def test_from_config_follows_the_model_option(corpus):
    from configs import default

    root, _ = corpus
    config = default.get_config()
    assert config.model.punctuation is False  # the paper's setting
    config.data.dir = str(root / "marks")
    config.data.num_folds = 4
    assert "word_marks" not in next(from_config(config).eval_batches("test"))
    config.model.punctuation = True
    assert "word_marks" in next(from_config(config).eval_batches("test"))
    tiny = default.get_config("tiny")
    tiny.model.punctuation = True
    toy = next(from_config(tiny).train_batches())
    validate(toy)
    assert toy["word_marks"][toy["word_mask"]].any()


_SIZES = dict(num_classes=3, vocab_size=20, embed_dim=6, hidden=5, attention_dim=6, fusion_dim=6, filters=4,
              widths=(2, 3))


def _batch():
    batch = dict(random_batch(np.random.default_rng(0), 3, 6, 4, vocab_size=20, num_classes=3))
    batch["word_marks"] = np.where(batch["word_mask"], S, 0).astype(np.int32)
    return batch


def test_text_only_model_uses_the_marks_when_on_and_is_unchanged_when_off():
    batch = _batch()
    other = dict(batch, word_marks=np.where(batch["word_mask"], Q, 0).astype(np.int32))
    on = build_model("text_only", punctuation=True, **_SIZES)
    variables = jax.jit(on.init)(jax.random.key(0), batch)
    assert variables["params"]["text"]["mark_embedding"]["embedding"].shape == (NUM_MARKS, 8)
    apply_on = jax.jit(on.apply)
    assert not np.allclose(apply_on(variables, batch).logits, apply_on(variables, other).logits)
    without = {k: v for k, v in batch.items() if k != "word_marks"}
    with pytest.raises(ValueError, match="punctuation=True but got no word_marks"):
        jax.eval_shape(on.apply, variables, without)

    # Off (the paper): the tree of a model built without the option, and the marks change nothing.
    today, off = build_model("text_only", **_SIZES), build_model("text_only", punctuation=False, **_SIZES)
    shapes = lambda model, inputs: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype),
                                                          jax.eval_shape(model.init, jax.random.key(0), inputs))
    assert shapes(today, without) == shapes(off, batch)
    v_off = jax.jit(off.init)(jax.random.key(0), without)
    apply_off = jax.jit(off.apply)
    np.testing.assert_array_equal(apply_off(v_off, without).logits, apply_off(v_off, other).logits)


@pytest.mark.parametrize("name", sorted(n for n, branches in BRANCHES.items() if "text" in branches))
def test_every_model_with_a_text_branch_gets_the_mark_embedding(name):
    shapes = lambda **kw: jax.eval_shape(build_model(name, **_SIZES, **kw).init, jax.random.key(0), _batch())
    assert shapes(punctuation=True)["params"]["text"]["mark_embedding"]["embedding"].shape == (NUM_MARKS, 8)
    assert "mark_embedding" not in shapes()["params"]["text"]


def _utterance(words, transcript, auto=False):
    n = len(words)
    return Utterance(words=words, frames=[np.ones((2, 64), np.float32)] * n, word_start=np.arange(n) * 0.3,
                     word_end=np.arange(n) * 0.3 + 0.2, transcript=transcript, transcript_auto=auto,
                     long_words=0, audio_seconds=1.0, timing={})


def test_predictor_passes_marks_from_the_text(caplog):
    model = build_model("text_only", punctuation=True, **_SIZES)
    variables = jax.jit(model.init)(jax.random.key(0), _batch())
    predictor = Predictor(model, variables, Vocab(["<pad>", "<unk>", "yes", "no", "way"]), ["a", "b", "c"],
                          layout=BatchLayout(batch_size=2))
    seen = []
    step = predictor._eval_step
    predictor._eval_step = lambda v, batch: seen.append(batch) or step(v, batch)
    asked = predictor.predict_utterances([_utterance(["yes", "no", "way"], "Yes... no way!"),
                                          _utterance(["no", "way"], "No way?")])
    np.testing.assert_array_equal(seen[0]["word_marks"][:, :3], [[E, N, X], [N, Q, 0]])
    told = predictor.predict_utterances([_utterance(["no", "way"], "No way!")])
    assert told[0].probabilities != asked[1].probabilities  # same words, another mark
    with caplog.at_level(logging.WARNING):
        predictor.predict_utterances([_utterance(["no", "way"], "No way!", auto=True)])
    assert not seen[-1]["word_marks"].any() and "speech recognition" in caplog.text


def test_punctuation_dropout_drops_every_mark_of_an_utterance_in_training_only():
    sizes = dict(_SIZES, dropout=0.0, fused_dropout=0.0)
    batch = _batch()
    zeroed = dict(batch, word_marks=np.zeros_like(batch["word_marks"]))
    model = build_model("text_only", punctuation=True, punctuation_dropout=1.0, **sizes)
    variables = jax.jit(model.init)(jax.random.key(0), batch)

    @functools.partial(jax.jit, static_argnames="train")
    def logits(inputs, train):
        return model.apply(variables, inputs, train=train, rngs={"dropout": jax.random.key(1)},
                           mutable=["batch_stats"])[0].logits

    np.testing.assert_allclose(logits(batch, True), logits(zeroed, True), rtol=1e-6)
    assert not np.allclose(logits(batch, False), logits(zeroed, False))
    with pytest.raises(ValueError, match="punctuation_dropout=1.5"):
        build_model("text_only", punctuation=True, punctuation_dropout=1.5, **sizes)


def test_train_and_evaluate_with_marks_and_without(corpus, tmp_path):
    from configs import default
    from hmaf.evaluate import evaluate_workdir
    from hmaf.training.trainer import train_and_evaluate

    root, _ = corpus
    config = default.get_config("tiny", model="text_only")
    config.data.update(source="corpus", dir=str(root / "marks"), num_folds=4, pad_words_to=16)
    config.model.update(hidden=4, attention_dim=4, filters=4, widths=(2,), audio_norm="batch", punctuation=True)
    config.update(batch_size=4, staged=False, num_train_steps=2, eval_every=2, log_every=1, pack_frames=False)
    train_and_evaluate(config, tmp_path / "w")
    # As recognised words come: every mark 0, and a corpus prepared without marks will do.
    without = evaluate_workdir(tmp_path / "w", root / "old", split="test", no_punctuation=True)
    assert without["no_punctuation"]
    assert without["num_examples"] == CorpusSource(root / "old", num_folds=4).split_sizes["test"] > 0
    with pytest.raises(CorpusError, match="re-run python -m hmaf.prepare"):
        evaluate_workdir(tmp_path / "w", root / "old", split="test")
