"""Prepare a corpus: ``python -m hmaf.prepare --manifest M --out DIR [...]``.

Reads a manifest (JSONL or CSV, see :mod:`hmaf.data.manifest`), aligns and featurizes
every utterance and writes the corpus directory (see :mod:`hmaf.data.writer`). Rerunning
the same command resumes an interrupted run. With ``--beam`` the per-utterance work runs as
an Apache Beam pipeline through tensorflow-datasets (:mod:`hmaf.data.beam`, docs/scaling.md)
on the runner ``--beam_options`` names; the corpus written is the same. ``--dask N`` runs it on
a local Dask cluster of N worker processes (:mod:`hmaf.data.dask_cluster`). ``--augment SPEC`` adds
augmented copies of every utterance (:mod:`hmaf.data.augment`, docs/augmentation.md). Prints a summary;
exit status 1 when the manifest is unreadable or no example is usable.
"""

from __future__ import annotations

import logging
import sys

from hmaf import cli
from hmaf.data.align import ALIGNERS, BOUNDARIES, DEFAULT_ALIGNER, DEFAULT_BOUNDARIES
from hmaf.data.manifest import ManifestError


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m hmaf.prepare", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="JSONL or CSV manifest")
    p.add_argument("--out", required=True, help="output corpus directory")
    p.add_argument("--embeddings", default="glove6b50",
                   help='word vectors: "glove6b50", "word2vec:PATH", "glove:PATH" or "train[:dim=100]"')
    p.add_argument("--vocab_extra", type=int, default=0, metavar="N",
                   help="open vocabulary: add the N most frequent words of the pretrained --embeddings, so that "
                        "words new to the corpus keep their vectors at predict time (default 0, the paper's)")
    p.add_argument("--l_max", type=int, default=100, help="most frames kept per word")
    p.add_argument("--long_word_rule", choices=("subsample", "truncate"), default="subsample",
                   help="how words longer than l_max frames are cut")
    p.add_argument("--num_shards", type=int, default=None, help="TFRecord shards (default: ~64 MiB each)")
    p.add_argument("--workers", type=int, default=None, help="preprocessing processes (default: all cores)")
    p.add_argument("--labels", default=None, help="comma-separated label names in class-index order")
    p.add_argument("--name", default=None, help="corpus name (default: the output folder's name)")
    p.add_argument("--aligner", choices=ALIGNERS, default=DEFAULT_ALIGNER,
                   help="word aligner: aeneas (the paper's), pocketsphinx, or auto (the better by measurement, "
                        "falling back to the other when it fails on an utterance); see docs/alignment.md")
    p.add_argument("--boundaries", choices=BOUNDARIES, default=DEFAULT_BOUNDARIES,
                   help="where pocketsphinx's word boundaries end up: hmm (its search's 10 ms frames) or signal "
                        f"(moved onto the signal at 1 ms; ours); default {DEFAULT_BOUNDARIES}; see docs/alignment.md")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", default="",
                   help='waveform augmentation, one copy per item, e.g. "noise:white:snr=5-20,reverb:rt60=0.2-0.8,'
                        'telephone,gain:db=-6-6,speed:0.9,speed:1.1" (see hmaf.data.augment; default none, the paper)')
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    p.add_argument("--beam", action="store_true",
                   help="preprocess with Apache Beam via tensorflow-datasets (pip install 'hmaf[beam]')")
    p.add_argument("--beam_options", default=None,
                   help='Beam pipeline flags as one string, e.g. "--runner=DirectRunner --direct_num_workers=2" '
                        "(default: the DirectRunner); --workers does not apply")
    p.add_argument("--beam_data_dir", default=None,
                   help="where the Beam workers write the tfds dataset and rejects (default OUT/tfds); "
                        "on a cluster, storage they share with this process, e.g. gs://bucket/path")
    p.add_argument("--dask", type=int, default=None, metavar="N",
                   help="run the Beam pipeline on a local Dask cluster of N worker processes "
                        "(implies --beam; pip install 'hmaf[dask]')")
    return p


def _summary(info: dict) -> str:
    t = info["timing"]
    emb = info["embeddings"]
    lines = [
        f"corpus {info['name']}: {info['num_examples']} examples, {info['audio_seconds']:.1f} s of audio, "
        f"{info['num_rejects']} rejected {info['reject_reasons'] or ''}",
        f"labels: {info['label_counts']}",
        f"speakers: {len(info['speakers'])}, groups: {len(info['groups'])}, splits: {info['splits']}",
        f"words: {info['num_words']}, vocabulary {emb['vocab_size']}, embeddings {emb['spec']} dim {emb['dim']}, "
        f"unknown {100 * emb['unknown_share']:.1f}% of the vocabulary",
        f"long words (> {info['l_max']} frames, {info['long_word_rule']}): {info['long_words']}; "
        f"longest word {info['max_word_frames']} frames",
        f"automatic transcripts: {info['num_transcript_auto']}",
        f"word timings by: {info.get('aligned_by', {})}, aligner fallbacks: {info.get('align_fallbacks', 0)}",
        f"shards: {len(info['shards'])} ({info['skipped_shards']} already complete), "
        f"cached utterances: {info['cached_utterances']}",
        "time (s): " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in t.items()),
        f"content_hash {info['content_hash']}",
    ]
    if "beam_counters" in info:
        lines.append(f"beam counters: {info['beam_counters']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    common = dict(embeddings=args.embeddings, vocab_extra=args.vocab_extra, l_max=args.l_max, long_word_rule=args.long_word_rule,
                  num_shards=args.num_shards, labels=labels, name=args.name, seed=args.seed,
                  progress=not args.no_progress)
    if args.augment and (args.beam or args.dask is not None):
        print(f"error: --augment is not available with {'--dask' if args.dask is not None else '--beam'} yet",
              file=sys.stderr)
        return 1
    if (args.beam_options is not None or args.beam_data_dir is not None) and not args.beam and args.dask is None:
        print("error: --beam_options and --beam_data_dir need --beam or --dask", file=sys.stderr)
        return 1
    if args.beam and (args.aligner != DEFAULT_ALIGNER or args.boundaries != DEFAULT_BOUNDARIES):
        print(f"error: --beam aligns with --aligner {DEFAULT_ALIGNER} --boundaries {DEFAULT_BOUNDARIES} only",
              file=sys.stderr)
        return 1
    try:
        # deferred imports so --help stays fast
        if args.dask is not None:
            try:
                from hmaf.data.dask_cluster import prepare_on_local_cluster
            except ModuleNotFoundError as e:
                print(f"error: --dask needs {e.name}: pip install 'hmaf[dask]'", file=sys.stderr)
                return 1

            # The workers align each row themselves, so --aligner applies (unlike the tfds path of --beam).
            info = prepare_on_local_cluster(args.manifest, args.out, num_workers=args.dask,
                                            beam_options=args.beam_options, beam_data_dir=args.beam_data_dir,
                                            aligner=args.aligner, boundaries=args.boundaries, **common)
        elif args.beam:
            try:
                from hmaf.data.beam import prepare_beam
            except ModuleNotFoundError as e:
                print(f"error: --beam needs {e.name}: pip install 'hmaf[beam]'", file=sys.stderr)
                return 1

            info = prepare_beam(args.manifest, args.out, beam_options=args.beam_options,
                                beam_data_dir=args.beam_data_dir, **common)
        else:
            from hmaf.data.writer import prepare

            info = prepare(args.manifest, args.out, num_workers=args.workers, aligner=args.aligner,
                           boundaries=args.boundaries,
                           augment=args.augment, **common)
    except (ManifestError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(_summary(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
