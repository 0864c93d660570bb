"""Tests of hmaf.corpora.synthetic: the design, and a tiny corpus end to end."""

import collections
import json
import os

import numpy as np
import pytest

from hmaf.corpora import festival, synthetic

needs_festival = pytest.mark.skipif(not festival.available(), reason="festival is not installed "
                                    "(tools/setup.sh installs it)")


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
    # every voice of every engine is its own speaker and group
    assert {i.speaker for i in items} == {f"{i.engine}:{i.voice}" for i in items}
    assert collections.Counter(i.engine for i in items) == {"espeak": 120, "festival": 120}


def test_speakers_split_over_engines():
    assert synthetic.speaker_voices(5) == [("espeak", "en+f1"), ("festival", "kal"),
                                           ("espeak", "en+f2"), ("festival", "ked"),
                                           ("espeak", "en+f3")]
    assert {e for e, _ in synthetic.speaker_voices(3, ["festival"])} == {"festival"}
    with pytest.raises(ValueError, match="voices"):
        synthetic.speaker_voices(40, ["festival"])
    items = synthetic.design(40, seed=0, num_speakers=4, engines=["festival"])
    assert {i.engine for i in items} == {"festival"}


def test_delivery_is_jittered_so_no_single_setting_identifies_a_class():
    # 2560 items: about 160 deliveries per engine and class, so the 10th and 90th
    # percentiles are those of the delivery table, not of one small draw
    items = [i for i in synthetic.design(2560, seed=0) if i.delivery is not None]
    for engine in synthetic.DEFAULT_ENGINES:
        for dim in range(4):
            values = {label: np.array([i.delivery[dim] for i in items
                                       if i.engine == engine and i.label == label])
                      for label in synthetic.LABELS}
            for label, v in values.items():
                # each class's middle 80 % overlaps some other class's middle 80 %
                lo, hi = np.percentile(v, [10, 90])
                others = [np.percentile(w, [10, 90]) for k, w in values.items() if k != label]
                assert any(o[0] < hi and lo < o[1] for o in others), (engine, dim, label)
        # ... while the class means still differ: the combination carries the class
        means = {label: np.mean([i.delivery for i in items if i.engine == engine
                                 and i.label == label], axis=0) for label in synthetic.LABELS}
        assert means["angry"][2] > means["neutral"][2] > means["sad"][2]


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


@needs_festival
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
    assert set(report["per_engine"]) == {"espeak", "festival"}
    assert sum(e["utterances_compared"] for e in report["per_engine"].values()) == 24
    utterances = [json.loads(l) for l in open(os.path.join(out, "utterances.jsonl"))]
    assert [u["id"] for u in utterances] == [m["id"] for m in manifest]
    assert {u["engine"] for u in utterances} == {"espeak", "festival"}
    # the same seed gives the same audio
    again = synthetic.generate(str(tmp_path / "again"), size=24, seed=0, workers=1, num_speakers=4)
    assert again["num_utterances"] == 24
    for m in manifest[:5]:
        a = open(os.path.join(out, "source", m["audio"]), "rb").read()
        b = open(os.path.join(tmp_path, "again", "source", m["audio"]), "rb").read()
        assert a == b


@needs_festival
def test_cli_engines_flag_and_utterances_file(tmp_path):
    out = tmp_path / "fest"
    assert synthetic.main(["--out", str(out), "--size", "8", "--speakers", "2", "--engines",
                           "festival", "--no_prepare", "--workers", "1"]) == 0
    rows = [json.loads(l) for l in open(out / "utterances.jsonl")]
    assert len(rows) == 8
    for row in rows:
        assert set(row) == {"id", "label", "speaker", "group", "engine", "voice", "sentence", "kind"}
        assert row["engine"] == "festival" and row["group"] == f"festival:{row['voice']}"
        assert row["speaker"] == row["group"] and row["kind"] in synthetic.KINDS
    # ambiguous pairs share the text, so they share the sentence id
    by_pair = collections.defaultdict(set)
    truth = {t["id"]: t for t in map(json.loads, open(out / "source" / "truth.jsonl"))}
    for row in rows:
        if truth[row["id"]]["pair"] is not None:
            by_pair[truth[row["id"]]["pair"]].add(row["sentence"])
    assert by_pair and all(len(s) == 1 for s in by_pair.values())
    # festival's bytes repeat
    again = tmp_path / "again"
    synthetic.generate(str(again), size=8, seed=0, workers=2, num_speakers=2, engines=["festival"])
    for m in map(json.loads, open(out / "source" / "manifest.jsonl")):
        assert (out / "source" / m["audio"]).read_bytes() == (again / "source" / m["audio"]).read_bytes()
    with pytest.raises(ValueError, match="unknown synthesis engine"):
        synthetic.main(["--out", str(tmp_path / "x"), "--engines", "espeak,nope"])


def test_every_engines_delivery_table_overlaps_between_classes():
    """The table itself, for every engine (flite too): each class's middle 80 % of every
    setting (mean ± 1.2816 sd of its jitter) overlaps another class's."""
    assert set(synthetic.DELIVERY) == set(synthetic.ENGINE_VOICES) == set(synthetic.DELIVERY_JITTER)
    for engine, table in synthetic.DELIVERY.items():
        sd = np.asarray(synthetic.DELIVERY_JITTER[engine])
        for label, mean in table.items():
            lo, hi = np.asarray(mean) - 1.2816 * sd, np.asarray(mean) + 1.2816 * sd
            for dim in range(4):
                assert any(abs(other[dim] - mean[dim]) < hi[dim] - lo[dim]
                           for k, other in table.items() if k != label), (engine, label, dim)
        assert table["angry"][2] > table["neutral"][2] > table["sad"][2]
        assert table["angry"][3] > table["neutral"][3] > table["sad"][3]


def test_the_command_line_prepares_an_open_vocabulary_by_default(tmp_path, monkeypatch):
    seen = []

    def build(out, **kwargs):
        seen.append(kwargs["vocab_extra"])
        return {"generate": {"num_utterances": 0, "audio_seconds": 0.0}, "timing_s": {"generate": 0.0},
                "alignment": None}

    monkeypatch.setattr(synthetic, "build", build)
    assert synthetic.main(["--out", str(tmp_path / "a")]) == 0
    assert synthetic.main(["--out", str(tmp_path / "b"), "--vocab_extra", "0"]) == 0
    assert seen == [synthetic.DEFAULT_VOCAB_EXTRA, 0] and synthetic.DEFAULT_VOCAB_EXTRA > 0


def test_default_speakers_fall_back_to_every_voice_an_engine_has():
    assert synthetic.default_speakers() == synthetic.DEFAULT_SPEAKERS  # two engines have more voices
    assert synthetic.default_speakers(["flite"]) == len(synthetic.FLITE_VOICES) < synthetic.DEFAULT_SPEAKERS
    items = synthetic.design(48, seed=0, engines=["flite"])  # no num_speakers: all 12 Flite voices
    assert len({i.speaker for i in items}) == len(synthetic.FLITE_VOICES)
