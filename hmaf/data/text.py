"""Transcript normalisation: text -> the list of words that are aligned and embedded.

Rules, in order:
0. C1 control characters (U+0080-U+009F) are never text: a transcript that has them is
   Windows-1252 read as Latin-1 (MELD's dev CSV writes "didn\x92t"), and each becomes its
   Windows-1252 character ("didn\u2019t"; \x85 -> "\u2026", \x96/\x97 -> dashes);
   :func:`repair_c1`. The five code points Windows-1252 leaves undefined stay, and
   separate words like any other control character.
1. Unicode NFKC (composes "cafe" + combining accent into "café", folds ligatures and
   full-width forms), then lowercase.
2. Typographic apostrophes (’ ‘ ʼ ′ `) become "'".
3. A word is a run of letters and digits of any script (Unicode categories L*, N*), with
   the combining marks that follow them (M*, e.g. Devanagari vowel signs), optionally
   joined by single apostrophes inside it: "don't", "rock'n'roll", "o'brien".
   Apostrophes at a word's edge ("'hello'", "students'") and every other character
   (punctuation, hyphens, underscores, symbols, emoji) separate words and are dropped:
   "well-known" -> "well", "known"; "3.5" -> "3", "5".

Punctuation is dropped from the words, but :func:`punctuated_words` and
:func:`word_marks` give each word the mark that follows it (none, comma-like, full stop,
question, exclamation, ellipsis) for models with ``punctuation=True``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Sequence

from hmaf.batch import NUM_MARKS


def _cp1252_of_c1() -> dict[int, str]:
    table = {}
    for code in range(0x80, 0xA0):
        try:
            table[code] = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: undefined in Windows-1252
            pass
    return table


_C1_AS_CP1252 = _cp1252_of_c1()
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


def repair_c1(text: str) -> str:
    """``text`` with its C1 control characters read as Windows-1252 (rule 0 of the module
    docstring): "didn\x92t" -> "didn\u2019t". Text without them is returned unchanged."""
    return text.translate(_C1_AS_CP1252)


def normalize_words(text: str) -> list[str]:
    """Splits ``text`` into normalised words (see the module docstring for the rules).

    Returns an empty list when the text holds no letters or digits; callers reject that.
    """
    text = unicodedata.normalize("NFKC", repair_c1(text)).lower().translate(_APOSTROPHES)
    words: list[str] = []
    current: list[str] = []

    def finish() -> None:
        while current and current[-1] == "'":
            current.pop()
        if current:
            words.append("".join(current))
        current.clear()

    for ch in text:
        category = unicodedata.category(ch)[0]
        if category in "LN" or (category == "M" and current):
            current.append(ch)
        elif ch == "'" and current and current[-1] != "'":
            current.append(ch)  # kept only if a letter follows (see finish)
        else:
            finish()
    finish()
    return words


# Punctuation marks per word (``config.model.punctuation``; docs/training.md). Punctuation
# is not spoken and has no frames, so it never becomes a token: each word carries the mark
# that follows it in the transcript, and the text branch sees it beside the word vector.
# The ids (hmaf.batch.MARK_NAMES, the batch contract's): 0 none, 1 comma-like, 2 full stop,
# 3 question, 4 exclamation, 5 ellipsis.
MARK_NONE, MARK_COMMA, MARK_STOP, MARK_QUESTION, MARK_EXCLAMATION, MARK_ELLIPSIS = range(NUM_MARKS)
# Several marks between two words (or after the last) give one: the strongest by this
# order, "!" > "?" > "..." > "." > comma-like ("?!" -> exclamation, "..." then "?" -> question).
_STRENGTH = {MARK_NONE: 0, MARK_COMMA: 1, MARK_STOP: 2, MARK_ELLIPSIS: 3, MARK_QUESTION: 4, MARK_EXCLAMATION: 5}
# Characters that can make a mark (after NFKC, which turns "…" into "..." and full-width
# "！？" into "!?"): comma-like , ; : and dashes (hyphen, U+2010 hyphen, en and em dash,
# Arabic and ideographic commas), stops (and the ideographic stop), question and
# exclamation marks (and the Arabic question mark). Quotes, brackets, apostrophes and
# inverted ¿ ¡ (which open a sentence) are not marks.
_MARK_RUN = re.compile("([,;:\\-\u2010\u2013\u2014\u060c\u3001.\u3002?\u061f!]+)")
# A single one of these directly between two letters or digits joins them ("well-known",
# "3.5", "1,000", "10:30", "KL-5") and is no mark.
_JOINERS = frozenset(",:-\u2010.")


def _mark_of_run(run: str) -> int:
    """The mark class of a run of mark characters (the strongest mark in it)."""
    if "!" in run:
        return MARK_EXCLAMATION
    if "?" in run or "\u061f" in run:
        return MARK_QUESTION
    if ".." in run:
        return MARK_ELLIPSIS
    if "." in run or "\u3002" in run:
        return MARK_STOP
    return MARK_COMMA


def punctuated_words(text: str) -> tuple[list[str], list[int]]:
    """The words of ``text`` exactly as :func:`normalize_words` gives them, and one mark
    id per word: the punctuation between that word and the next (or the end of the text).

    Mark ids (:data:`hmaf.batch.MARK_NAMES`): 0 none, 1 comma-like (``, ; :`` and dashes: "-", "--",
    "–", "—"), 2 full stop, 3 question, 4 exclamation, 5 ellipsis ("..", "...", "…").
    Several marks in one gap give the strongest: "!" > "?" > "..." > "." > comma-like.
    A single hyphen, stop, comma or colon directly between two letters or digits joins
    them and is no mark ("well-known", "3.5", "1,000"). Quotes, brackets and apostrophes
    are not marks; marks before the first word belong to no word and are dropped.

    Every mark character separates words in :func:`normalize_words`, so cutting the text
    at the marks leaves the words as they are: the words are ``normalize_words`` of the
    pieces between marks, in order.
    """
    text = unicodedata.normalize("NFKC", repair_c1(text))
    pieces = _MARK_RUN.split(text)  # even: text between marks; odd: a run of mark characters
    words: list[str] = []
    marks: list[int] = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            found = normalize_words(piece)
            words.extend(found)
            marks.extend([MARK_NONE] * len(found))
            continue
        before, after = pieces[i - 1], pieces[i + 1]
        if piece in _JOINERS and before[-1:].isalnum() and after[:1].isalnum():
            continue
        if marks:
            mark = _mark_of_run(piece)
            if _STRENGTH[mark] > _STRENGTH[marks[-1]]:
                marks[-1] = mark
    return words, marks


def word_marks(words: Sequence[str], transcript: str, transcript_auto: bool = False) -> list[int]:
    """One mark id per word of ``words`` (see :func:`punctuated_words`), from ``transcript``.

    ``words`` are the record's words: normally ``normalize_words(transcript)``, but they
    can come from elsewhere (given word timings whose words differ); then the
    transcript's words are matched to them (longest matching blocks, ``difflib``) and an
    unmatched word gets 0. A recognised transcript (``transcript_auto``) has no
    punctuation to speak of: all 0.
    """
    if transcript_auto or not words:
        return [MARK_NONE] * len(words)
    found, marks = punctuated_words(transcript)
    if list(words) == found:
        return marks
    out = [MARK_NONE] * len(words)
    matcher = difflib.SequenceMatcher(a=found, b=list(words), autojunk=False)
    for block in matcher.get_matching_blocks():
        out[block.b:block.b + block.size] = marks[block.a:block.a + block.size]
    return out
