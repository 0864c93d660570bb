"""Input-pipeline benchmark: padding efficiency, compile shapes, speed and resume cost.

For a prepared corpus (``--data DIR``) or a random one written on the fly (``--fake``),
measures for training (balanced / unbalanced x length-grouped / not) and one evaluation
pass (grouped / not): the share of real frames in the computed ``B*N*L`` arrays, the
share of real words in ``B*N``, the number of distinct batch shapes (compilations of a
jitted step) and batches per second; then the time a resumed ``train_batches(start_step)``
takes to deliver its first batch.

    python benchmarks/input_pipeline.py --fake speech --steps 200
    python benchmarks/input_pipeline.py --fake uniform --speakers 6 --per_speaker 9 --batch_size 6
    python benchmarks/input_pipeline.py --data /path/to/prepared --batch_size 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time

from hmaf import cli
from hmaf.data import pipeline
from hmaf.data.fake_corpus import write_fake_corpus
from hmaf.data.source import CorpusSource


def _measure(batches, steps: int | None) -> dict:
    start = time.perf_counter()
    taken = list(batches if steps is None else itertools.islice(batches, steps))
    seconds = time.perf_counter() - start
    stats = pipeline.padding_stats(taken)
    stats["batches_per_s"] = round(len(taken) / seconds, 1)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}


def main() -> None:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a prepared corpus directory")
    parser.add_argument("--fake", choices=("uniform", "speech"),
                        help="write a random corpus with these length statistics instead")
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--per_speaker", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="training batches per configuration")
    parser.add_argument("--window_batches", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--resume_step", type=int, default=1000)
    args = parser.parse_args()
    if bool(args.data) == bool(args.fake):
        parser.error("give exactly one of --data or --fake")
    data_dir = args.data
    if args.fake:
        data_dir = tempfile.mkdtemp(prefix="hmaf-fake-")
        # "uniform" is the tests' tiny corpus (1-14 words of 1-30 frames); "speech" has
        # spoken-dialogue statistics capped like l_max = 100.
        caps = dict(max_words=14, max_frames=30) if args.fake == "uniform" else dict(max_words=80, max_frames=100)
        write_fake_corpus(data_dir, num_speakers=args.speakers, per_speaker=args.per_speaker,
                          lengths=args.fake, num_shards=4, **caps)
    source = lambda **kw: CorpusSource(data_dir, batch_size=args.batch_size, **kw)
    print(json.dumps({"corpus": data_dir, "fake": args.fake, "batch_size": args.batch_size,
                      "split_sizes": source().split_sizes}))
    rows = []
    for balanced in (True, False):
        rows.append(({"mode": "train", "balanced": balanced, "bucket": False},
                     _measure(source(balanced=balanced, bucket=False).train_batches(), args.steps)))
        for window in args.window_batches:
            rows.append(({"mode": "train", "balanced": balanced, "bucket": True, "window_batches": window},
                         _measure(source(balanced=balanced, window_batches=window).train_batches(), args.steps)))
    for bucket in (True, False):
        rows.append(({"mode": "eval train split", "bucket": bucket},
                     _measure(source(bucket=bucket).eval_batches("train"), None)))
    for config, stats in rows:
        print(json.dumps({**config, **stats}))
    resumed = source()
    for step in (0, args.resume_step):
        start = time.perf_counter()
        next(resumed.train_batches(start_step=step))
        print(json.dumps({"resume_start_step": step, "first_batch_s": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
