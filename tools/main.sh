#!/usr/bin/env bash
# Installs everything, generates and prepares the embedded default corpus
# (espeak-ng and festival speech, 4 emotions), and trains the paper's FAF model on it with the
# staged protocol. Results: runs/faf/metrics.json; TensorBoard: runs/faf.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m hmaf.corpora.synthetic --out data/synthetic
.venv/bin/python -m hmaf.train --config configs/faf.py --workdir runs/faf --config.data.dir=data/synthetic "$@"
