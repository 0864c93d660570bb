"""Log-mel band statistics per speaker (for ``config.model.audio_norm = "speaker"``).

The paper feeds the raw log-mel frames (no normalisation, ``audio_norm = "none"``).
Per-speaker normalisation subtracts the speaker's mean and divides by the speaker's
standard deviation in each of the 64 bands (and each prosody column,
:mod:`hmaf.data.prosody`), so that what is left is how the speaker's
delivery departs from the speaker's own voice, not the voice (or the synthesizer).

- Prepare time: :func:`write_speaker_stats` writes ``<prepared dir>/speaker_stats.json``
  (atomically) from the records: per speaker, the mean and standard deviation of every band
  over all the speaker's real frames (the word frames the records hold, no padding) of
  ORIGINAL utterances only (augmented copies, ``augment != ""``, would shift a speaker's
  statistics towards the noise and channels drawn for them):
  ``{speaker: {"mean": [M floats], "std": [M floats], "frames": n}}``, M the corpus's
  frame width (67; 64 in corpora prepared before the prosody columns).
  Standard deviations are population ones (``ddof=0``), not floored: the consumer adds its
  epsilon.
- Predict time: :func:`utterance_stats` gives the same statistics from the utterance alone
  (the fallback), or a speaker profile file is given (:func:`load_profile`).

Speaker profile (a file a user passes at predict time): JSON ``{"mean": [M floats],
"std": [M floats], "frames": n}``; a ``speaker_stats.json`` works too, with the speaker
named. To make one for a new speaker, prepare a few of the speaker's recordings as a corpus
(``python -m hmaf.prepare``), then
``python -m hmaf.data.normalize DIR --speaker NAME --profile OUT.json``.
``python -m hmaf.data.normalize DIR`` recomputes ``DIR/speaker_stats.json`` from the records.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Iterable, Iterator, Sequence

import numpy as np

from hmaf import cli
from hmaf.data.features import FRAME_DIMS
from hmaf.io import atomic_write_json

STATS_FILE = "speaker_stats.json"


def utterance_stats(frames: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Band mean and standard deviation over an utterance's real frames.

    Args:
      frames: ``[T, M]`` or a list of per-word ``[n_i, M]`` arrays, M in ``FRAME_DIMS``.
    Returns:
      (mean float32 ``[M]``, std float32 ``[M]``), population std.
    """
    stacked = np.concatenate(list(frames), axis=0) if isinstance(frames, (list, tuple)) else np.asarray(frames)
    if stacked.ndim != 2 or stacked.shape[1] not in FRAME_DIMS or stacked.shape[0] == 0:
        raise ValueError(f"frames must be [T >= 1, M] with M one of {FRAME_DIMS}, got shape {stacked.shape}")
    stacked = stacked.astype(np.float64)
    return stacked.mean(axis=0).astype(np.float32), stacked.std(axis=0).astype(np.float32)


def speaker_stats(examples: Iterable[tuple[str, str, np.ndarray]]) -> dict[str, dict[str, object]]:
    """Per-speaker band statistics of ``(speaker, augment, frames [T, M])`` examples.

    Examples with a non-empty ``augment`` are skipped. Sums are float64 and each example is
    centred on its own mean before it is merged (Chan et al.'s pairwise update), so long
    corpora lose no precision.

    Returns:
      ``{speaker: {"mean": [M], "std": [M], "frames": n}}``, speakers sorted.
    """
    acc: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
    for speaker, augment, frames in examples:
        if augment:
            continue
        x = np.asarray(frames, dtype=np.float64)
        n_b = x.shape[0]
        if n_b == 0:
            continue
        mean_b = x.mean(axis=0)
        m2_b = np.square(x - mean_b).sum(axis=0)
        if speaker not in acc:
            acc[speaker] = (n_b, mean_b, m2_b)
            continue
        n_a, mean_a, m2_a = acc[speaker]
        n = n_a + n_b
        delta = mean_b - mean_a
        acc[speaker] = (n, mean_a + delta * n_b / n, m2_a + m2_b + np.square(delta) * n_a * n_b / n)
    return {speaker: {"mean": [float(v) for v in mean.astype(np.float32)],
                      "std": [float(v) for v in np.sqrt(m2 / n).astype(np.float32)],
                      "frames": int(n)}
            for speaker, (n, mean, m2) in sorted(acc.items())}


def read_record_frames(files: Sequence[str]) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(speaker, augment, frames [T, M] float32)`` of every record in ``files``."""
    import tensorflow as tf  # deferred: only reading records needs it

    from hmaf.data.records import FEATURE_SPEC

    spec = {key: FEATURE_SPEC[key] for key in ("speaker", "augment", "frames", "frame_dim")}
    ds = tf.data.TFRecordDataset(list(files)).map(lambda s: tf.io.parse_single_example(s, spec)).batch(256)
    for batch in ds.as_numpy_iterator():
        for speaker, augment, raw, dim in zip(batch["speaker"], batch["augment"], batch["frames"],
                                              batch["frame_dim"]):
            yield speaker.decode(), augment.decode(), np.frombuffer(raw, dtype="<f4").reshape(-1, int(dim))


def write_speaker_stats(out_dir: str | os.PathLike, files: Sequence[str]) -> dict[str, dict[str, object]]:
    """Computes the statistics of the records ``files`` and writes ``out_dir/speaker_stats.json``."""
    stats = speaker_stats(read_record_frames(files))
    atomic_write_json(os.path.join(os.fspath(out_dir), STATS_FILE), stats)
    return stats


def _check_entry(entry: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict) or "mean" not in entry or "std" not in entry:
        raise ValueError(f"{where}: expected an object with \"mean\" and \"std\" (one of {FRAME_DIMS} floats each)")
    mean = np.asarray(entry["mean"], dtype=np.float32)
    std = np.asarray(entry["std"], dtype=np.float32)
    if mean.shape != std.shape or mean.ndim != 1 or mean.shape[0] not in FRAME_DIMS:
        raise ValueError(f"{where}: mean and std must hold the same number of floats, one of {FRAME_DIMS}; "
                         f"got {mean.shape} and {std.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= 0)):
        raise ValueError(f"{where}: mean and std must be finite, std >= 0")
    return mean, std


def _read_json(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def load_speaker_stats(prepared_dir: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{speaker: (mean float32 [M], std float32 [M])}`` from ``<dir>/speaker_stats.json``.

    Raises:
      FileNotFoundError / ValueError: naming the file (missing, or malformed entries).
    """
    path = os.path.join(os.fspath(prepared_dir), STATS_FILE)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{speaker: {{mean, std, frames}}}}")
    return {speaker: _check_entry(entry, f"{path}: speaker {speaker!r}") for speaker, entry in data.items()}


def load_profile(path: str | os.PathLike, speaker: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A speaker profile for predict time: (mean float32 [M], std float32 [M]).

    ``path`` is a profile file ``{"mean", "std", "frames"}``, or a ``speaker_stats.json``
    from which ``speaker`` is taken (needed when it holds more than one speaker).
    """
    path = os.fspath(path)
    data = _read_json(path)
    if isinstance(data, dict) and "mean" in data:
        return _check_entry(data, path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: neither a profile {{mean, std, frames}} nor speaker statistics")
    if speaker is None:
        if len(data) != 1:
            raise ValueError(f"{path}: holds {len(data)} speakers; name one ({', '.join(sorted(data)[:5])}, ...)")
        speaker = next(iter(data))
    if speaker not in data:
        raise ValueError(f"{path}: no speaker {speaker!r}")
    return _check_entry(data[speaker], f"{path}: speaker {speaker!r}")


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python -m hmaf.data.normalize",
                                description="(Re)compute speaker_stats.json of a prepared corpus, "
                                            "or write one speaker's profile.")
    p.add_argument("prepared_dir")
    p.add_argument("--speaker", default=None, help="the speaker whose profile --profile writes")
    p.add_argument("--profile", default=None, help="write this speaker's profile JSON here")
    args = p.parse_args(argv)
    try:
        if args.profile:
            if args.speaker is None:
                raise ValueError("--profile needs --speaker")
            data = _read_json(os.path.join(args.prepared_dir, STATS_FILE))
            if args.speaker not in data:
                raise ValueError(f"{args.prepared_dir}/{STATS_FILE}: no speaker {args.speaker!r}")
            _check_entry(data[args.speaker], f"speaker {args.speaker!r}")
            atomic_write_json(args.profile, data[args.speaker])
            print(f"wrote {args.profile} ({data[args.speaker]['frames']} frames)")
        else:
            info = _read_json(os.path.join(args.prepared_dir, "dataset.json"))
            files = [os.path.join(args.prepared_dir, "records", s) for s in info["shards"]]
            stats = write_speaker_stats(args.prepared_dir, files)
            print(f"wrote {os.path.join(args.prepared_dir, STATS_FILE)}: {len(stats)} speakers")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
