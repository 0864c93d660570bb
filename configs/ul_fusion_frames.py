"""Model `ul_fusion_frames` (the paper's utterance-level baseline: frame BiGRU + attention over
all frames of the utterance, no word alignment); `configs/ul_fusion_frames.py:tiny` for a smoke run."""

from configs import default


def get_config(arg=None):
    return default.get_config(arg, model="ul_fusion_frames")
