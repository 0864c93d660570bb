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


def test_windows_1252_read_as_latin_1_is_repaired():
    from hmaf.data.text import punctuated_words, repair_c1

    # MELD's dev CSV: right quote, ellipsis, em dash and left quote as C1 control characters
    text = "Okay Bob, I\x92m \x91the\x92 one\x85 you didn\x92t\x97get it"
    assert repair_c1(text) == "Okay Bob, I\u2019m \u2018the\u2019 one\u2026 you didn\u2019t\u2014get it"
    assert normalize_words(text) == ["okay", "bob", "i'm", "the", "one", "you", "didn't", "get", "it"]
    words, marks = punctuated_words(text)
    assert words == normalize_words(text)
    assert marks == [0, 1, 0, 0, 5, 0, 1, 0, 0]  # comma, ellipsis after "one", dash after "didn't"
    # code points Windows-1252 leaves undefined stay control characters: they separate words
    assert repair_c1("a\x81b") == "a\x81b" and normalize_words("a\x81b") == ["a", "b"]
    assert repair_c1("plain text, it's fine") == "plain text, it's fine"
