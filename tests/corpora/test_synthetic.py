"""Tests of hmaf.corpora.synthetic: the design, and a tiny corpus end to end."""

import collections
import json
import os

import pytest

from hmaf.corpora import synthetic


def test_design_balanced_and_deterministic():
    items = synthetic.design(240, seed=1)
    assert [(i.id, i.text, i.voice) for i in items] == [
        (i.id, i.text, i.voice) for i in synthetic.design(240, seed=1)]
    assert [i.text for i in items] != [i.text for i in synthetic.design(240, seed=2)]
    labels = collections.Counter(i.label for i in items)
    assert max(labels.values()) - min(labels.values()) <= 4
    kinds = collections.Counter(i.kind for i in items)
    assert kinds["ambiguous"] == 72  # 30 %
    per_speaker = collections.Counter(i.speaker for i in items)
    assert len(per_speaker) == synthetic.DEFAULT_SPEAKERS
    assert max(per_speaker.values()) - min(per_speaker.values()) <= 4


def test_ambiguous_pairs_share_text_and_differ_only_in_emphasis():
    items = [i for i in synthetic.design(240, seed=0) if i.kind == "ambiguous"]
    pairs = collections.defaultdict(list)
    for i in items:
        pairs[i.pair].append(i)
    assert all(len(p) == 2 for p in pairs.values())
    for a, b in pairs.values():
        assert a.text.replace("*", "") == b.text.replace("*", "")
        assert a.label != b.label and a.emphasized_word != b.emphasized_word
        assert a.delivery is None and b.delivery is None  # plain utterance delivery


def test_delivery_kind_has_no_emotion_words():
    emotion_words = {w for d in (synthetic.SITUATION_WORDS, synthetic.FEELING_WORDS) for ws in d.values() for w in ws}
    emotion_words |= {w for pairs in synthetic.INTERJECTIONS.values() for _, w in pairs}
    for item in synthetic.design(200, seed=0):
        if item.kind == "delivery":
            words = {w.strip(".,*").lower() for w in item.text.split()}
            assert not words & emotion_words, item.text


def test_tiny_corpus_end_to_end(tmp_path):
    out = str(tmp_path / "syn")
    result = synthetic.build(out, size=24, seed=0, workers=2, num_speakers=4)
    assert result["generate"]["num_utterances"] == 24
    truth = [json.loads(l) for l in open(os.path.join(out, "source", "truth.jsonl"))]
    manifest = [json.loads(l) for l in open(os.path.join(out, "source", "manifest.jsonl"))]
    assert [t["id"] for t in truth] == [m["id"] for m in manifest]
    assert sum(t["kind"] == "ambiguous" for t in truth) == 8
    for t, m in zip(truth, manifest):
        assert len(t["words"]) == len(m["transcript"].split()) and not t["untimed"]
    dataset = result["dataset"]
    assert dataset["num_examples"] == 24 and dataset["label_names"] == list(synthetic.LABELS)
    report = json.load(open(os.path.join(out, "alignment_report.json")))
    assert report["utterances_compared"] == 24
    assert report["onset_error_ms"]["median"] < 30.0
    # the same seed gives the same audio
    again = synthetic.generate(str(tmp_path / "again"), size=24, seed=0, workers=1, num_speakers=4)
    assert again["num_utterances"] == 24
    for m in manifest[:5]:
        a = open(os.path.join(out, "source", m["audio"]), "rb").read()
        b = open(os.path.join(tmp_path, "again", "source", m["audio"]), "rb").read()
        assert a == b
