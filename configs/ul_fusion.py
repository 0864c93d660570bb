"""Model `ul_fusion` with the paper's settings; `configs/ul_fusion.py:tiny` for a smoke run."""

from configs import default


def get_config(arg=None):
    return default.get_config(arg, model="ul_fusion")
