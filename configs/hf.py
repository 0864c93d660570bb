"""Model `hf` with the paper's settings; `configs/hf.py:tiny` for a smoke run."""

from configs import default


def get_config(arg=None):
    return default.get_config(arg, model="hf")
