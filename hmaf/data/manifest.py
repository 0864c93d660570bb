"""Manifests: the list of utterances ``python -m hmaf.prepare`` turns into a corpus.

Format: JSONL (one JSON object per line; blank lines are skipped) or CSV with a header,
with the same column names:

- ``audio`` (required): path of an audio file, relative to the manifest's folder or absolute;
- ``transcript`` (optional): missing or null -> speech recognition supplies one; an empty
  string "" is kept and later rejected as ``empty_transcript``. CSV cannot tell null from
  "", so in CSV an empty cell means "missing" (transcribe);
- ``label``, ``speaker`` (required for a corpus, strings; JSON numbers are accepted and
  turned into text; optional for prediction, ``read_manifest(path, labelled=False)``, where
  a missing one is "");
- ``id`` (optional, kept as given): default is the audio path relative to the manifest's
  folder without its extension (``a/001.wav`` -> ``a/001``, so ``a/001`` and ``b/001``
  differ); files that differ only by extension (``x.wav``, ``x.mp3``) keep it (``x.wav``,
  ``x.mp3``). Two rows with the same id (or the same file twice without ids) are a
  ``duplicate_id`` reject;
- ``split`` (optional), ``group`` (optional; default = speaker);
- ``word_timings`` (optional): list of [word, start_s, end_s]; in CSV a JSON string.

The format is picked by suffix (``.jsonl``/``.json``/``.ndjson`` vs ``.csv``), otherwise by
the first character ("{" -> JSONL). A malformed row becomes a :class:`RowReject` naming the
file and line; only an unreadable file raises :class:`ManifestError`.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
from typing import Any

from hmaf.data.text import repair_c1

REQUIRED = ("audio", "label", "speaker")
# A prediction manifest (hmaf.predict) needs only the recordings.
REQUIRED_UNLABELLED = ("audio",)
OPTIONAL = ("transcript", "id", "split", "group", "word_timings")


class ManifestError(Exception):
    """The manifest as a whole cannot be read (missing, undecodable, no header, unknown format)."""


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One valid manifest row; ``audio`` is an absolute path, ``line`` the 1-based file line."""

    line: int
    id: str
    audio: str
    transcript: str | None
    label: str
    speaker: str
    group: str
    split: str
    word_timings: tuple[tuple[str, float, float], ...] | None
    # The resolved waveform augmentation of a prepare-time copy (hmaf.data.augment); "" = original.
    augment: str = ""


@dataclasses.dataclass(frozen=True)
class RowReject:
    """A malformed row: fields as in ``rejects.jsonl`` plus the line."""

    line: int
    id: str
    audio: str
    reason: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "audio": self.audio, "reason": self.reason, "detail": self.detail}


def _text(value: Any) -> str | None:
    """A string field: str kept, JSON numbers turned to text, null/empty -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _default_id(audio: str, folder: str, keep_extension: bool = False) -> str:
    """The audio path relative to the manifest's folder ("a/001.wav" -> "a/001")."""
    if os.path.isabs(audio):
        rel = os.path.relpath(audio, folder)
        audio = audio if rel.startswith("..") else rel
    audio = os.path.normpath(audio)
    return (audio if keep_extension else os.path.splitext(audio)[0]).replace(os.sep, "/")


def _word_timings(value: Any) -> tuple[tuple[str, float, float], ...]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError("word_timings must be a list of [word, start_s, end_s]")
    out = []
    for entry in value:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3 and isinstance(entry[0], str)):
            raise ValueError(f"word_timings entry {entry!r} is not [word, start_s, end_s]")
        out.append((entry[0], float(entry[1]), float(entry[2])))
    return tuple(out)


def _parse_row(raw: dict[str, Any], line: int, folder: str, required: tuple[str, ...]) -> ManifestRow:
    """Validates one row; raises ValueError/TypeError with the problem."""
    missing = [k for k in required if _text(raw.get(k)) is None]
    if missing:
        raise ValueError(f"missing required field(s) {missing}")
    audio = _text(raw["audio"])
    path = os.path.normpath(os.path.join(folder, audio))
    transcript = raw.get("transcript")
    if transcript is not None and not isinstance(transcript, str):
        raise TypeError(f"transcript must be a string or null, got {type(transcript).__name__}")
    if transcript is not None:
        # Windows-1252 read as Latin-1 ("didn\x92t") is repaired before anything, the
        # cache key included, sees the text (hmaf.data.text.repair_c1)
        transcript = repair_c1(transcript)
    speaker = _text(raw.get("speaker")) or ""
    timings = raw.get("word_timings")
    return ManifestRow(
        line=line,
        id=_text(raw.get("id")) or _default_id(audio, folder),
        audio=path,
        transcript=transcript,
        label=_text(raw.get("label")) or "",
        speaker=speaker,
        group=_text(raw.get("group")) or speaker,
        split=_text(raw.get("split")) or "",
        word_timings=None if timings in (None, "") else _word_timings(timings),
    )


def _raw_rows(path: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, Any] | None, str]]:
    """(line, row dict or None, error) for every non-blank data line of the file."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read the manifest: {e}") from None
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        is_jsonl = True
    elif suffix == ".csv":
        is_jsonl = False
    else:
        is_jsonl = text.lstrip().startswith("{")
    rows: list[tuple[int, dict[str, Any] | None, str]] = []
    if is_jsonl:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                rows.append((number, None, f"not valid JSON: {e}"))
                continue
            if isinstance(obj, dict):
                rows.append((number, obj, ""))
            else:
                rows.append((number, None, f"expected a JSON object, got {type(obj).__name__}"))
        return rows
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames or not set(required) <= {name.strip() for name in reader.fieldnames}:
        raise ManifestError(f"{path}: the CSV header {reader.fieldnames} lacks the columns {list(required)}")
    try:
        for record in reader:
            number = reader.line_num
            if None in record:  # more cells than header columns
                rows.append((number, None, f"{len(record[None])} more cell(s) than header columns"))
                continue
            if all(v in (None, "") for v in record.values()):
                continue
            # An empty cell is a missing value (CSV has no null).
            rows.append((number, {k.strip(): (v if v != "" else None) for k, v in record.items()}, ""))
    except csv.Error as e:
        raise ManifestError(f"{path}: CSV error at line {reader.line_num}: {e}") from None
    return rows


def read_manifest(path: str | os.PathLike, *, labelled: bool = True) -> tuple[list[ManifestRow], list[RowReject]]:
    """Reads and validates a manifest.

    Args:
      labelled: a corpus manifest (``label`` and ``speaker`` required); False for
        recordings to predict, where only ``audio`` is required.

    Returns:
      (valid rows in file order, rejects for malformed rows and duplicate ids, each
      with reason "bad_row" or "duplicate_id" and a detail naming file and line).

    Raises:
      ManifestError: the file is missing, unreadable or has no usable CSV header.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    rows: list[ManifestRow] = []
    rejects: list[RowReject] = []
    parsed: list[tuple[ManifestRow, str | None]] = []  # with the manifest's own audio string when id is default
    required = REQUIRED if labelled else REQUIRED_UNLABELLED
    for line, raw, error in _raw_rows(path, required):
        where = f"{path}:{line}"
        raw_id = str(raw.get("id") or "") if raw else ""
        raw_audio = str(raw.get("audio") or "") if raw else ""
        if raw is None:
            rejects.append(RowReject(line, raw_id, raw_audio, "bad_row", f"{where}: {error}"))
            continue
        try:
            row = _parse_row(raw, line, folder, required)
        except (ValueError, TypeError) as e:
            rejects.append(RowReject(line, raw_id, raw_audio, "bad_row", f"{where}: {e}"))
            continue
        parsed.append((row, None if _text(raw.get("id")) else _text(raw["audio"])))
    # Default ids of different files that differ only by extension keep the extension.
    files_by_stem: dict[str, set[str]] = collections.defaultdict(set)
    for row, audio in parsed:
        if audio is not None:
            files_by_stem[row.id].add(row.audio)
    seen: dict[str, int] = {}
    for row, audio in parsed:
        if audio is not None and len(files_by_stem[row.id]) > 1:
            row = dataclasses.replace(row, id=_default_id(audio, folder, keep_extension=True))
        if row.id in seen:
            rejects.append(RowReject(row.line, row.id, row.audio, "duplicate_id",
                                     f"{path}:{row.line}: id {row.id!r} already used on line {seen[row.id]}"))
            continue
        seen[row.id] = row.line
        rows.append(row)
    rejects.sort(key=lambda r: r.line)
    return rows, rejects
