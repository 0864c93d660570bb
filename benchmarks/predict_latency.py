"""Single-utterance predict latency, warm, with and without the features.

    python -m benchmarks.predict_latency [--repeats 10] [--out FILE.jsonl]

Synthesises one 12-word sentence with espeak-ng, then times with
:class:`hmaf.inference.Predictor` (FAF with ``configs/default.py``'s model settings: the
paper's sizes, the prosody columns, speaker normalisation from the utterance itself as
without a profile; randomly initialised: latency does not depend on the weights):

* ``features_ms``: preprocessing alone (decode, forced alignment, log-mel bands and
  prosody columns), the exact function corpus preparation uses;
* ``model_ms``: the jitted forward pass on the preprocessed utterance (host padding
  and transfer included);
* ``total_ms``: ``Predictor(audio, text)`` end to end.

Medians over ``--repeats`` calls after one warm-up call; one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from hmaf import cli
from benchmarks.run import environment
from configs.default import get_config
from hmaf.data.features import FRAME_DIM
from hmaf.data.text import normalize_words
from hmaf.data.vocab import Vocab
from hmaf.inference import Predictor, utterance_batch
from hmaf.models import build_model, model_options
from hmaf.training.steps import init_variables

SENTENCE = "I really cannot believe you kept the whole secret from me all week"  # 13 words


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: compilation, first-call imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=None, help="append the JSON line to this file")
    args = parser.parse_args()

    words = normalize_words(SENTENCE)
    vocab = Vocab.build([words])
    labels = ["angry", "happy", "sad", "neutral"]
    model = build_model("faf", num_classes=len(labels), vocab_size=len(vocab), embed_dim=50,
                        **model_options(get_config().model))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "utterance.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), SENTENCE], check=True)
        sample = utterance_batch([vocab.ids(words)], [[np.zeros((4, FRAME_DIM), np.float32)] * len(words)])
        predictor = Predictor(model, init_variables(model, sample), vocab, labels)
        utterance = predictor.preprocess(wav, SENTENCE)
        result = {
            "benchmark": "predict_latency", "model": "faf", "prosody": model.prosody,
            "audio_norm": model.audio_norm, "words": len(words),
            "audio_seconds": round(float(utterance.audio_seconds), 3), "repeats": args.repeats,
            "features_ms": median_ms(lambda: predictor.preprocess(wav, SENTENCE), args.repeats),
            "model_ms": median_ms(lambda: predictor.predict_utterances([utterance]), args.repeats),
            "total_ms": median_ms(lambda: predictor(wav, SENTENCE), args.repeats),
            **environment(),
        }
    jax.effects_barrier()
    line = json.dumps(result, sort_keys=True)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
