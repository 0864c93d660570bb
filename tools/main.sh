#!/usr/bin/env bash
# Installs everything, generates and prepares the embedded default corpus
# (espeak-ng and festival speech, 4 emotions, 1280 utterances of 20 voices), and trains the paper's FAF model on it with the
# staged protocol. Results: runs/faf/metrics.json; TensorBoard: runs/faf.
# Model sizes: GRU 32, attention and fusion 64, 64 filters per width instead of the paper's
# 100 / 200 / 200 / 300 (configs/faf.py keeps those). On the corpus's earlier 640-utterance form the
# paper's sizes overfit: over five folds FAF reached 74.4 % against 67.0 % in-split (exact McNemar
# p = 0.0002) and 64.8 % against 62.4 % on held-out MELD sentences (p = 0.026), level
# across engines (README, "Results").
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m hmaf.corpora.synthetic --out data/synthetic
.venv/bin/python -m hmaf.train --config configs/faf.py --workdir runs/faf --config.data.dir=data/synthetic \
    --config.model.hidden=32 --config.model.attention_dim=64 --config.model.fusion_dim=64 \
    --config.model.filters=64 "$@"
