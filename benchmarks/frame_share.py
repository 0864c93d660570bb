"""Share of computed frames that are real, on a prepared corpus, padded vs packed.

    python -m benchmarks.frame_share --data data/synthetic [--batch_size 8] [--out FILE.jsonl]

Reads the training batches of fold 0 as the trainer gets them
(:class:`hmaf.data.source.CorpusSource`, one pass over the train split's
evaluation order) and packs each with the default packing
(:func:`hmaf.models.packing.pack_batch`, rows rounded up to 8). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from hmaf import cli


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from hmaf.data.source import CorpusSource
    from hmaf.models.packing import pack_batch

    source = CorpusSource(args.data, batch_size=args.batch_size)
    real = padded = packed = batches = 0
    for batch in source.eval_batches("train"):
        mask = np.asarray(batch["frame_mask"])
        real += int(mask.sum())
        padded += mask.size
        packed += pack_batch(batch)["pack_mask"].size
        batches += 1
    record = {"section": "frame_share", "data": args.data, "batch_size": args.batch_size, "batches": batches,
              "real_frames": real, "real_share_padded": real / padded, "real_share_packed": real / packed}
    line = json.dumps(record, sort_keys=True)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
