"""Command line: ``python -m hmaf.train --config configs/faf.py --workdir DIR``.

Overrides follow the flax examples: ``--config.learning_rate=3e-4``,
``--config.stage=fusion``, ``--config.data.dir=...``; ``configs/faf.py:tiny`` picks
the smoke-test variant.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Orbax logs every save at INFO; keep the progress lines readable.
    logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
    # Config files import `configs.*`; make the repository root importable.
    sys.path.insert(0, os.getcwd())
    from hmaf.checkpoint import CheckpointMismatchError
    from hmaf.data.source import CorpusError
    from hmaf.training import distributed
    from hmaf.training.trainer import train_and_evaluate

    # Several processes (--config.distributed.*): join the job before JAX touches a device.
    distributed.initialize(FLAGS.config)
    logging.info("config:\n%s", FLAGS.config)
    try:
        results = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (CorpusError, CheckpointMismatchError) as e:  # the message says what to do; no traceback
        sys.exit(f"python -m hmaf.train: {e}")
    if "final" in results:
        print(json.dumps({"final": results["final"]}, indent=2))


if __name__ == "__main__":
    app.run(main)
