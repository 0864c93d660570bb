"""The tiny random corpus shared by the tests of hmaf.data (see hmaf.data.fake_corpus)."""

import pytest

from hmaf.data.fake_corpus import write_fake_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """(corpus directory, examples by utt_id): 6 speakers x 9 utterances, 3 classes,
    1-14 words of 1-30 frames, two shards."""
    out_dir = tmp_path_factory.mktemp("tiny_corpus")
    examples = write_fake_corpus(out_dir, num_speakers=6, per_speaker=9)
    return str(out_dir), examples
