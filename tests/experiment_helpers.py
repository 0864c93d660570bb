"""A tiny trained workdir from real speech, shared by the evaluate / inference / explain
/ notebook tests (built once per test session)."""

from __future__ import annotations

from pathlib import Path

import soundfile

SENTENCE = "what the hell this is great"


def tiny_corpus(root: Path) -> Path:
    """A 24-utterance synthetic corpus (3 speakers) prepared into ``root/corpus``."""
    from hmaf.corpora import synthetic

    corpus = root / "corpus"
    if not (corpus / "dataset.json").exists():
        synthetic.build(str(corpus), size=24, num_speakers=3, workers=1, embeddings="train:dim=8")
    return corpus


def tiny_config(data_dir: Path, model: str = "faf"):
    from configs import default

    config = default.get_config("tiny", model=model)
    config.data.source = "corpus"
    config.data.dir = str(data_dir)
    config.data.num_folds = 3
    config.model.update(hidden=4, attention_dim=4, fusion_dim=4, filters=4, widths=(2,))
    config.batch_size = 4
    config.staged = False  # one stage: few compilations keep the tests fast
    config.num_train_steps = 4
    config.eval_every = 4
    config.log_every = 2
    return config


def tiny_source(config):
    """The corpus padded to one shape (one compilation of each step)."""
    from hmaf.data.source import CorpusSource

    return CorpusSource(config.data.dir, fold=0, num_folds=config.data.num_folds, batch_size=config.batch_size,
                        bucket=False, pad_words_to=24, pad_frames_to=112,
                        speaker_stats=config.model.audio_norm == "speaker")  # as from_config attaches them


def tiny_workdir(root: Path) -> Path:
    """A FAF model trained for a few steps on :func:`tiny_corpus` (all three stages)."""
    from hmaf.training.trainer import train_and_evaluate

    root.mkdir(parents=True, exist_ok=True)
    workdir = root / "faf"
    if not (workdir / "metrics.json").exists():
        config = tiny_config(tiny_corpus(root))
        train_and_evaluate(config, workdir, tiny_source(config))
    return workdir


def speech(path: Path, text: str = SENTENCE) -> Path:
    """A synthesized wav of ``text`` (espeak-ng)."""
    from hmaf.corpora import tts

    synthesis = tts.synthesize(text, "en+f3")
    soundfile.write(path, synthesis.audio, synthesis.sample_rate)
    return path


def fake_corpus_with_utterances(root: Path, *, num_speakers: int = 6, per_speaker: int = 6) -> Path:
    """A random prepared corpus (:func:`hmaf.data.fake_corpus.write_fake_corpus`) with the
    ``utterances.jsonl`` a corpus builder writes: the first half of the speakers are
    voices of engine ``e0``, the rest of ``e1``; utterance k of every speaker says
    sentence ``S<k>``; kinds cycle through the embedded corpus's four."""
    import json

    from hmaf.data.fake_corpus import write_fake_corpus

    data = root / "fake"
    examples = write_fake_corpus(data, num_speakers=num_speakers, per_speaker=per_speaker, max_frames=12)
    kinds = ("ambiguous", "delivery", "text", "both")
    lines = []
    for utt_id, ex in examples.items():
        speaker, k = ex["speaker"], int(utt_id.rsplit("-", 1)[1])
        engine = "e0" if int(speaker[1:]) < num_speakers // 2 else "e1"
        lines.append(json.dumps({"id": utt_id, "label": ex["label_name"], "speaker": speaker, "group": speaker,
                                 "engine": engine, "voice": speaker, "sentence": f"S{k}",
                                 "kind": kinds[k % len(kinds)]}) + "\n")
    (data / "utterances.jsonl").write_text("".join(lines))
    return data
