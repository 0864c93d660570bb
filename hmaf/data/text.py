"""Transcript normalisation: text -> the list of words that are aligned and embedded.

Rules, in order:
1. Unicode NFKC (composes "cafe" + combining accent into "café", folds ligatures and
   full-width forms), then lowercase.
2. Typographic apostrophes (’ ‘ ʼ ′ `) become "'".
3. A word is a run of letters and digits of any script (Unicode categories L*, N*), with
   the combining marks that follow them (M*, e.g. Devanagari vowel signs), optionally
   joined by single apostrophes inside it: "don't", "rock'n'roll", "o'brien".
   Apostrophes at a word's edge ("'hello'", "students'") and every other character
   (punctuation, hyphens, underscores, symbols, emoji) separate words and are dropped:
   "well-known" -> "well", "known"; "3.5" -> "3", "5".
"""

from __future__ import annotations

import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


def normalize_words(text: str) -> list[str]:
    """Splits ``text`` into normalised words (see the module docstring for the rules).

    Returns an empty list when the text holds no letters or digits; callers reject that.
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
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
