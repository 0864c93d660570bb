"""Model `faf` with the paper's settings; `configs/faf.py:tiny` for a smoke run."""

from configs import default


def get_config(arg=None):
    return default.get_config(arg, model="faf")
