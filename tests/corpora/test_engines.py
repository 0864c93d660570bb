"""Tests of hmaf.corpora.engines that need no synthesis, and of the install script."""

import pathlib
import re

import numpy as np
import pytest

from hmaf.corpora import engines, festival, flite, shaping, tts


def test_parse_engines_and_groups():
    assert engines.parse_engines("espeak, festival,espeak") == ("espeak", "festival")
    assert engines.parse_engines(["festival"]) == ("festival",)
    assert engines.parse_engines("flite,espeak") == ("flite", "espeak")
    assert engines.group_of("flite", "rms+p1") == "flite:rms+p1"
    assert engines.group_of("festival", "kal+p1") == "festival:kal+p1"
    with pytest.raises(ValueError, match="unknown synthesis engine"):
        engines.parse_engines("espeak,mbrola")
    with pytest.raises(ValueError, match="at least one"):
        engines.parse_engines(" , ")
    with pytest.raises(ValueError, match="unknown synthesis engine"):
        engines.open_engine("mbrola")


def test_festival_voice_names():
    spec = festival.parse_voice("slt+p2")
    assert (spec.kind, spec.pitch_factor, spec.rate_factor) == ("hts", *festival.PERSONAS["p2"])
    assert festival.parse_voice("kal").kind == "diphone"
    with pytest.raises(tts.TTSError, match="persona"):
        festival.parse_voice("kal+x")


def test_tokens_carry_the_emphasis_of_their_segment():
    transcript, tokens = shaping.tokens_of(
        ["what the hell", tts.Segment(", great", prosody=tts.Prosody(pitch="+50%", rate="50%",
                                                                     volume="+20%")), "."])
    assert transcript == "what the hell, great."
    assert [t.text for t in tokens] == ["what", "the", "hell,", "great."]
    assert (tokens[3].pitch, tokens[3].duration, tokens[3].gain) == (1.5, 2.0, 1.2)
    assert (tokens[2].pitch, tokens[2].duration) == (1.0, 1.0)
    assert shaping.tokens_of("one plain text")[0] == "one plain text"
    for nothing in ("", " ... ", ["", tts.Segment("!")]):
        with pytest.raises(tts.TTSError, match="nothing to say"):
            shaping.tokens_of(nothing)


def test_flite_voice_names():
    spec = flite.parse_voice("rms+p2")
    assert (spec.base, spec.kind, spec.pitch_factor, spec.rate_factor) == ("rms", "spamf0",
                                                                          *flite.PERSONAS["p2"])
    assert flite.parse_voice("kal16").kind == "diphone"
    with pytest.raises(tts.TTSError, match="unknown flite voice"):
        flite.parse_voice("kal")  # the 8 kHz diphones are left out
    with pytest.raises(tts.TTSError, match="persona"):
        flite.parse_voice("slt+x")


def test_setup_script_installs_the_engines_and_voices():
    script = (pathlib.Path(__file__).parents[2] / "tools" / "setup.sh").read_text()
    packages = re.search(r'APT_PACKAGES="([^"]+)"', script).group(1).split()
    for package in ("espeak-ng", "festival", "festvox-kallpc16k", "festvox-kdlpc16k",
                    "festvox-us-slt-hts", "flite"):
        assert package in packages
    # the idempotence check and the install use the one list
    assert "dpkg -s $APT_PACKAGES" in script and "install -y -qq $APT_PACKAGES" in script


def test_soft_limit_keeps_quiet_samples_and_never_clips():
    x = np.linspace(-3.0, 3.0, 601, dtype=np.float32)
    y = shaping.soft_limit(x)
    quiet = np.abs(x) <= shaping.LIMIT_KNEE
    assert np.array_equal(y[quiet], x[quiet])
    assert np.all(np.abs(y) <= 1.0) and np.all(np.diff(y) >= 0)  # monotonic: no folding
    loud = (np.abs(x) > shaping.LIMIT_KNEE) & (np.abs(x) <= 1.5)
    assert np.all(np.abs(y[loud]) < np.abs(x[loud])) and np.all(np.abs(y[loud]) < 1.0)


def test_emns_and_meld_give_flite_speakers_flite_voices():
    from hmaf.corpora import emns, meld

    speakers = emns.speaker_voices(("espeak", "flite"))
    assert speakers[:2] == [("espeak", "en+f1"), ("flite", "kal16")]
    assert {v for e, v in speakers if e == "flite"} == set(emns.FLITE_VOICES)
    for name, gender in (("Ross", "male"), ("Monica", "female"), ("Gunther", "male"),
                         ("Janice", "female"), ("Someone", "")):
        voice = meld.voice_for(name, gender, "flite")
        assert flite.parse_voice(voice).name == voice  # a real Flite voice
    assert meld.voice_for("Ross", "male", "flite") == "rms"


def test_missing_flite_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(flite, "_find", lambda name: None)
    monkeypatch.setattr(flite, "_LIBRARY", None)
    assert not flite.available()
    with pytest.raises(tts.TTSError, match="install the Debian package flite"):
        engines.open_engine("flite").synthesize("hello there", "slt")
