"""Pronunciations for words outside pocketsphinx's dictionary, offline, from espeak-ng.

espeak-ng's letter-to-sound rules (``espeak-ng -q --ipa -v en-us``) give the IPA of any
word, numbers and non-ASCII letters included ("42" -> ``fˈoːɹɾi tˈuː``, "café" ->
``kæfˈeɪ``); :func:`ipa_to_arpabet` maps that IPA onto the CMU/ARPAbet phone set of
pocketsphinx's US English model ("42" -> ``F AO R D IY T UW``). Stress marks are
dropped (the model's phones carry none); sounds English lacks map to the nearest CMU
phone; anything else is skipped.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from typing import Sequence

ESPEAK_VOICE = "en-us"
ESPEAK_TIMEOUT_S = 30.0

# Longest match first (the table is searched by length).
_IPA_TO_ARPABET = {
    # diphthongs and r-coloured vowels
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "ɪə": "IH R", "eə": "EH R",
    "ʊə": "UH R", "ɚ": "ER", "ɝ": "ER", "ɜː": "ER", "ɜ": "ER",
    # vowels
    "ɑː": "AA", "ɑ": "AA", "ɒ": "AA", "a": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ᵻ": "IH",
    "ɔː": "AO", "ɔ": "AO", "oːɹ": "AO R", "oː": "OW", "o": "OW", "ɛ": "EH", "e": "EH", "ɪ": "IH", "iː": "IY", "i": "IY",
    "ʊ": "UH", "uː": "UW", "u": "UW", "y": "UW", "ø": "UW", "œ": "ER", "ɨ": "IH", "ʉ": "UW",
    # syllabic consonants (U+0329): CMU spells them with a schwa
    "n̩": "AH N", "l̩": "AH L", "m̩": "AH M",
    # affricates, then consonants
    "tʃ": "CH", "dʒ": "JH", "b": "B", "d": "D", "ð": "DH", "f": "F", "ɡ": "G", "g": "G", "h": "HH",
    "j": "Y", "k": "K", "l": "L", "ɫ": "L", "ɬ": "L", "m": "M", "n": "N", "ɲ": "N Y", "ŋ": "NG", "p": "P",
    "ɹ": "R", "r": "R", "ɾ": "D", "ʁ": "R", "s": "S", "ʃ": "SH", "t": "T", "ʔ": "T", "θ": "TH", "v": "V",
    "w": "W", "ʍ": "W", "x": "K", "ç": "HH", "z": "Z", "ʒ": "ZH", "β": "V", "ɣ": "G", "c": "K", "ɟ": "JH",
}
_KEYS = sorted(_IPA_TO_ARPABET, key=len, reverse=True)
# Stress, length and tie marks, syllable breaks, zero-width joiners: no phone of their own.
_IGNORED = set("ˈˌ.‍-_ \u0361\u035c")
_LANGUAGE_SWITCH = re.compile(r"\([a-z-]+\)")


class G2PError(Exception):
    """No pronunciation could be made for a word."""


def ipa_to_arpabet(ipa: str) -> list[str]:
    """CMU phones of an IPA string, e.g. ``"kæfˈeɪ"`` -> ``["K", "AE", "F", "EY"]``."""
    text = unicodedata.normalize("NFC", _LANGUAGE_SWITCH.sub("", ipa))
    phones: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in _IGNORED:
            i += 1
            continue
        if text[i] == "ː":  # length of a vowel the table has no long form for
            i += 1
            continue
        for key in _KEYS:
            if text.startswith(key, i):
                phones.extend(_IPA_TO_ARPABET[key].split())
                i += len(key)
                break
        else:
            i += 1  # a sound with no CMU counterpart (clicks, tones): dropped
    return phones


def espeak_ipa(words: Sequence[str]) -> list[str]:
    """espeak-ng's IPA of each word (one espeak-ng run for all of them).

    Raises:
      G2PError: espeak-ng is missing, fails, or returns another number of lines.
    """
    # One word per clause: "." ends it, so espeak prints one line per word.
    text = "".join(f"{w}.\n" for w in words)
    try:
        proc = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", ESPEAK_VOICE], input=text, capture_output=True,
                              text=True, timeout=ESPEAK_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise G2PError(f"espeak-ng could not run: {e}") from None
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != len(words):
        raise G2PError(f"espeak-ng gave {len(lines)} pronunciations for {len(words)} words "
                       f"(exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    return lines


# word -> CMU phones; pronunciations never change within a process.
_CACHE: dict[str, tuple[str, ...]] = {}


def pronounce(words: Sequence[str]) -> dict[str, list[str]]:
    """CMU phones for each distinct word (cached per process).

    Raises:
      G2PError: naming the word, when espeak-ng fails or no phone is left.
    """
    todo = sorted(set(words) - set(_CACHE))
    if todo:
        try:
            ipas = espeak_ipa(todo)
        except G2PError:  # e.g. a word espeak splits over two lines: one run per word
            ipas = [espeak_ipa([w])[0] for w in todo]
        for word, ipa in zip(todo, ipas):
            _CACHE[word] = tuple(ipa_to_arpabet(ipa))
    out = {}
    for word in dict.fromkeys(words):
        if not _CACHE[word]:
            raise G2PError(f"no pronunciation for {word!r}")
        out[word] = list(_CACHE[word])
    return out
