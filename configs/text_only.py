"""Model `text_only` with the paper's settings; `configs/text_only.py:tiny` for a smoke run."""

from configs import default


def get_config(arg=None):
    return default.get_config(arg, model="text_only")
