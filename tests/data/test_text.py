import pytest

from hmaf.data.text import normalize_words


@pytest.mark.parametrize("text, words", [
    ("Hello, World!", ["hello", "world"]),
    ("Don't STOP: it's rock'n'roll", ["don't", "stop", "it's", "rock'n'roll"]),
    ("'quoted' students' books", ["quoted", "students", "books"]),  # edge apostrophes dropped
    ("It\u2019s O\u2018Brien", ["it's", "o'brien"]),  # typographic apostrophes
    ("a''b", ["a", "b"]),
    ("well-known 3.5 42 x_y", ["well", "known", "3", "5", "42", "x", "y"]),
    ("Café naïve RÉSUMÉ", ["café", "naïve", "résumé"]),
    ("cafe\u0301", ["café"]),  # combining accent composed (NFKC)
    ("\ufb01ne \uff21\uff22", ["fine", "ab"]),  # ligature and full-width folded
    ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),  # combining vowel signs stay in the word
    ("wow 🎉 ok", ["wow", "ok"]),
    ("", []),
    ("  ... !? -- ", []),
])
def test_normalize_words(text, words):
    assert normalize_words(text) == words
