"""Phase 1 of corpus preparation as an Apache Beam pipeline, through tensorflow-datasets.

``python -m hmaf.prepare --manifest M --out DIR --beam [--beam_options="..."]`` runs
:func:`prepare_beam`:

1. :class:`HmafCorpus`, a ``tfds.core.GeneratorBasedBuilder``, preprocesses every manifest
   row (decode, align, MFSC: :func:`hmaf.data.writer.preprocess_row`, the very function the
   process pool of :func:`hmaf.data.writer.prepare` runs) in a Beam pipeline and writes a
   tfds dataset under ``DIR/tfds``. The same code runs on the DirectRunner, Dataflow, Spark
   or Flink: only the pipeline options change (docs/scaling.md).
2. Bad rows never fail the pipeline: each is counted by a Beam counter
   ``hmaf/rejected_<reason>`` and written as a line of ``DIR/tfds/rejects/rejects-*.jsonl``
   (``DIR/tfds`` or ``--beam_data_dir``).
3. The tfds examples are read back in manifest order and stored in the writer's cache
   (``DIR/cache/<key>.npz``, keyed by audio bytes and settings as the normal path does);
   then :func:`hmaf.data.writer.write_corpus`, the normal path's phase 2, writes vocab.txt,
   embeddings.npy, the record shards, rejects.jsonl and dataset.json. The result is the
   corpus the normal path writes, with the same ``content_hash``.

Workers must read the audio at the manifest's paths (a shared or mounted file system) and
have hmaf installed.

On the Dask runner (``--beam_options="--runner=DaskRunner --dask_client_address=HOST:PORT"``,
or ``--dask N`` for a local cluster, :mod:`hmaf.data.dask_cluster`), and on any runner with
``worker_writes=True``, :mod:`hmaf.data.beam_workers` runs instead: no tfds dataset; the
workers write the cache and the record shards straight into the output folder (storage
they share with the driver), and the driver only builds the vocabulary and renames the
finished shards. Same corpus, same ``content_hash``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Iterator, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from hmaf.data import beam_workers
from hmaf.data.beam_workers import pipeline_options
from hmaf.data import features as features_lib
from hmaf.data import writer
from hmaf.data.manifest import ManifestRow
from hmaf.data.settings import PrepareSettings
from hmaf.data.utterance import Utterance

# TensorFlow is only the data side's tool: it must never hold an accelerator JAX needs.
try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # devices already initialised by an earlier import
    pass

log = logging.getLogger(__name__)

METRICS_NAMESPACE = "hmaf"
SPLIT = "corpus"  # one tfds split: the manifest's own split travels in the "split" feature
TIMING_KEYS = ("decode_s", "asr_s", "align_s", "features_s")


@dataclasses.dataclass
class HmafCorpusConfig(tfds.core.BuilderConfig):
    """What the builder preprocesses and how.

    Attributes:
      manifest: the manifest path (JSONL or CSV).
      label_names: class names in index order (the ClassLabel's names).
      l_max, long_word_rule: as in :func:`hmaf.data.writer.prepare`.
      rejects_prefix: path prefix of the rejects files the pipeline writes.
    """

    manifest: str = ""
    label_names: tuple[str, ...] = ()
    l_max: int = 100
    long_word_rule: str = "subsample"
    rejects_prefix: str = ""


class _Preprocess(beam.DoFn):
    """Manifest row -> (key, tfds example), or a reject on the ``rejects`` output."""

    def __init__(self, l_max: int, long_word_rule: str, label_names: Sequence[str]):
        self._l_max = l_max
        self._long_word_rule = long_word_rule
        self._label_index = {name: i for i, name in enumerate(label_names)}

    def process(self, row: ManifestRow) -> Iterator[Any]:
        key = writer.cache_key(row, self._l_max, self._long_word_rule)
        utt = writer.preprocess_row(row, self._l_max, self._long_word_rule)
        if isinstance(utt, Utterance) and key is None:  # as the writer: no key, no cache entry
            utt = {"reason": "unreadable_audio", "detail": f"{row.audio}: could not be hashed"}
        if isinstance(utt, dict):
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{utt['reason']}").inc()
            yield beam.pvalue.TaggedOutput("rejects", json.dumps(
                {"line": row.line, "id": row.id, "audio": row.audio, **utt}, ensure_ascii=False))
            return
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "examples").inc()
        yield row.line, _to_example(row, key, self._label_index[row.label], utt)


def _to_example(row: ManifestRow, key: str, label: int, utt: Utterance) -> dict[str, Any]:
    """The tfds example of an utterance of N words and T = sum(num_frames) frames."""
    return {
        "utt_id": row.id, "speaker": row.speaker, "group": row.group, "split": row.split, "label": label,
        "words": utt.words, "transcript": utt.transcript, "transcript_auto": utt.transcript_auto,
        "word_start": np.asarray(utt.word_start, np.float64), "word_end": np.asarray(utt.word_end, np.float64),
        "num_frames": np.asarray([len(f) for f in utt.frames], np.int64),
        "frames": np.concatenate(utt.frames).astype(np.float32),
        "long_words": utt.long_words, "audio_seconds": utt.audio_seconds,
        "timing": {k: float(utt.timing[k]) for k in TIMING_KEYS},
        "cache_key": key,
    }


class _PreprocessRows(beam.PTransform):
    """Rows -> keyed tfds examples; rejects go to text files and Beam counters, never lost."""

    def __init__(self, rows: Sequence[ManifestRow], config: HmafCorpusConfig):
        super().__init__()
        self._rows = list(rows)
        self._config = config

    def expand(self, pipeline: beam.pvalue.PBegin) -> beam.PCollection:
        c = self._config
        outputs = (pipeline
                   | "Rows" >> beam.Create(self._rows)
                   # One row per bundle element and no fusion with Create: a runner spreads
                   # the (seconds-long) rows over its workers.
                   | "Spread" >> beam.Reshuffle()
                   | "Preprocess" >> beam.ParDo(_Preprocess(c.l_max, c.long_word_rule, c.label_names))
                   .with_outputs("rejects", main="examples"))
        _ = outputs.rejects | "WriteRejects" >> beam.io.WriteToText(c.rejects_prefix, file_name_suffix=".jsonl")
        return outputs.examples


class HmafCorpus(tfds.core.GeneratorBasedBuilder):
    """Preprocessed utterances of a manifest: per-word MFSC frames, words, boundaries, labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Phase 1 of hmaf's corpus preparation."}

    def _info(self) -> tfds.core.DatasetInfo:
        c: HmafCorpusConfig = self.builder_config
        float64 = tfds.features.Tensor(shape=(), dtype=np.float64)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "utt_id": tfds.features.Text(),
                "speaker": tfds.features.Text(),
                "group": tfds.features.Text(),
                "split": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(c.label_names)),
                "words": tfds.features.Sequence(tfds.features.Text()),
                "transcript": tfds.features.Text(),
                "transcript_auto": tfds.features.Tensor(shape=(), dtype=np.bool_),
                "word_start": tfds.features.Tensor(shape=(None,), dtype=np.float64),
                "word_end": tfds.features.Tensor(shape=(None,), dtype=np.float64),
                "num_frames": tfds.features.Tensor(shape=(None,), dtype=np.int64),
                # [T, 67] float32, T = sum(num_frames): the words' frames one after another.
                "frames": tfds.features.Tensor(shape=(None, features_lib.FRAME_DIM), dtype=np.float32,
                                               encoding=tfds.features.Encoding.ZLIB),
                "long_words": tfds.features.Tensor(shape=(), dtype=np.int64),
                "audio_seconds": float64,
                "timing": tfds.features.FeaturesDict({k: float64 for k in TIMING_KEYS}),
                "cache_key": tfds.features.Text(),
            }),
            # Keys are manifest lines: examples come back in manifest order, as phase 2 needs.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, beam.PTransform]:
        del dl_manager  # the audio is local (or mounted); nothing to download
        c: HmafCorpusConfig = self.builder_config
        rows, _ = writer.read_manifest(c.manifest)
        allowed = set(c.label_names)
        return {SPLIT: self._generate_examples([r for r in rows if r.label in allowed])}

    def _generate_examples(self, rows: Sequence[ManifestRow]) -> beam.PTransform:
        return _PreprocessRows(rows, self.builder_config)

    def _process_pipeline_result(self, pipeline_result: Any) -> None:
        query = pipeline_result.metrics().query(
            beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))
        self.counters = {result.key.metric.name: int(result.result) for result in query["counters"]}
        log.info("beam counters: %s", self.counters)


def _read_rejects(prefix: str) -> list[dict[str, Any]]:
    rejects = []
    for path in sorted(tf.io.gfile.glob(f"{prefix}*.jsonl")):
        with tf.io.gfile.GFile(path) as f:
            rejects.extend(json.loads(line) for line in f if line.strip())
    return rejects


def prepare_beam(manifest: str | os.PathLike, out_dir: str | os.PathLike, *, beam_options: str | None = None,
                 beam_data_dir: str | None = None, embeddings: str = "glove6b50", l_max: int = 100,
                 long_word_rule: str = "subsample", num_shards: int | None = None,
                 labels: Sequence[str] | None = None, name: str | None = None, seed: int = 0,
                 progress: bool = True, worker_writes: bool | None = None, vocab_extra: int = 0) -> dict[str, Any]:
    """Prepares a corpus directory like :func:`hmaf.data.writer.prepare`, phase 1 on Apache Beam.

    Args:
      beam_options: Beam pipeline flags as one string (runner and its options); default the
        DirectRunner in this process.
      beam_data_dir: where the pipeline writes the tfds dataset and the rejects; default
        ``out_dir/tfds``. On a cluster the workers write there, so it must be storage they
        share with this process (e.g. ``gs://bucket/path`` on Dataflow).
      worker_writes: the workers write the cache and the record shards straight into
        ``out_dir``, which must then be storage they share (:mod:`hmaf.data.beam_workers`;
        no tfds dataset). Default: on the Dask runner only, which cannot run the tfds
        writer (it needs side inputs that runner does not support).
      Others: as :func:`hmaf.data.writer.prepare`. The tfds dataset is rebuilt on every call;
        phase 2 resumes as in the normal path.

    Returns:
      The content of ``dataset.json``; its ``beam_counters`` holds the pipeline's counters.

    Raises:
      hmaf.data.manifest.ManifestError: the manifest cannot be read.
      ValueError: bad arguments, no usable example, or a row the pipeline neither kept
        nor rejected.
    """
    options = pipeline_options(beam_options)
    if worker_writes is None:
        worker_writes = beam_workers.is_dask(options)
    if worker_writes:
        if beam_data_dir is not None:
            raise ValueError("beam_data_dir is for the tfds path; with worker_writes the workers write into out_dir")
        return beam_workers.prepare_on_workers(
            manifest, out_dir, beam_options=beam_options, embeddings=embeddings,
            l_max=l_max, long_word_rule=long_word_rule, num_shards=num_shards, labels=labels, name=name,
            seed=seed, progress=progress, vocab_extra=vocab_extra)
    if beam_workers.is_dask(options):
        raise ValueError("the Dask runner cannot run the tfds writer (no side inputs); use worker_writes=True")
    t_start = time.perf_counter()
    settings = PrepareSettings(embeddings=embeddings, l_max=l_max, long_word_rule=long_word_rule,
                               num_shards=num_shards, labels=labels, name=name, seed=seed, progress=progress,
                               vocab_extra=vocab_extra)
    out_dir, name, rows, rejects = writer.read_inputs(manifest, out_dir, settings)
    cache_dir = os.path.join(out_dir, "cache")
    tfds_dir = beam_data_dir or os.path.join(out_dir, "tfds")
    if tf.io.gfile.exists(tfds_dir):  # tfds would reuse an earlier build, of other rows
        tf.io.gfile.rmtree(tfds_dir)
    # The ClassLabel needs names up front; phase 2 re-indexes by name (default: the good rows' labels).
    config = HmafCorpusConfig(
        name="manifest", description=f"preprocessed {manifest}",
        manifest=os.path.abspath(os.fspath(manifest)),
        label_names=tuple(labels) if labels is not None else tuple(sorted({r.label for r in rows})),
        l_max=l_max, long_word_rule=long_word_rule, rejects_prefix=os.path.join(tfds_dir, "rejects", "rejects"))

    t1 = time.perf_counter()
    builder = HmafCorpus(data_dir=tfds_dir, config=config)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        beam_options=options))

    # Hand-off to phase 2 through the writer's cache (the pipeline's examples, in row order).
    by_id = {row.id: row for row in rows}  # ids are unique (read_manifest rejects duplicates)
    results: dict[int, dict[str, Any]] = {}
    for ex in tfds.as_numpy(builder.as_dataset(split=SPLIT, shuffle_files=False)):
        key = ex["cache_key"].decode()
        num_frames = ex["num_frames"]
        utt = Utterance(
            words=[w.decode() for w in ex["words"]], frames=np.split(ex["frames"], np.cumsum(num_frames)[:-1]),
            word_start=ex["word_start"], word_end=ex["word_end"], transcript=ex["transcript"].decode(),
            transcript_auto=bool(ex["transcript_auto"]), long_words=int(ex["long_words"]),
            audio_seconds=float(ex["audio_seconds"]), timing={k: float(ex["timing"][k]) for k in TIMING_KEYS})
        results[by_id[ex["utt_id"].decode()].line] = writer.cache_utterance(key, utt, cache_dir)
    for reject in _read_rejects(config.rejects_prefix):
        results[reject["line"]] = {"status": "reject", "cached": False, "reason": reject["reason"],
                                   "detail": reject["detail"]}
    missing = [row.id for row in rows if row.line not in results]
    if missing:  # the pipeline lost rows: never write a corpus that silently lacks them
        raise ValueError(f"the Beam pipeline neither kept nor rejected {len(missing)} row(s): {missing[:5]}")
    counters = getattr(builder, "counters", {})
    info = writer.write_corpus(
        manifest, out_dir, name, rows, [results[row.line] for row in rows], rejects, settings,
        phase1_s=time.perf_counter() - t1, t_start=t_start,
        extra={"beam_counters": dict(sorted(counters.items())), "beam_options": beam_options or "",
               "beam_data_dir": tfds_dir})
    return info
