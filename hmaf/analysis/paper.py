"""The published results of Gu et al. 2018 (Tables 1-3), to print beside ours.

Accuracies are percentages, F1 a fraction, as in the paper. A key missing from a row
means the paper gives no number there.
"""

from __future__ import annotations

# Table 1 (fusion strategies and baselines) and Table 2 (modalities, FAF for T+A),
# keyed by our model names.
TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "mosi": {
        "hf": {"wa": 74.1, "ua": 74.4, "weighted_f1": 0.744},
        "vf": {"wa": 75.3, "ua": 75.3, "weighted_f1": 0.755},
        "faf": {"wa": 76.4, "ua": 76.5, "weighted_f1": 0.768},
        "ul_fusion": {"wa": 72.5, "ua": 72.5, "weighted_f1": 0.730},
        "dl_fusion": {"wa": 71.8, "ua": 71.8, "weighted_f1": 0.720},
        "text_only": {"wa": 75.0, "weighted_f1": 0.748},
        "audio_only": {"wa": 60.2, "weighted_f1": 0.604},
    },
    "iemocap4": {
        "hf": {"wa": 70.0, "ua": 69.7, "weighted_f1": 0.695},
        "vf": {"wa": 71.8, "ua": 71.8, "weighted_f1": 0.713},
        "faf": {"wa": 72.7, "ua": 72.7, "weighted_f1": 0.726},
        "ul_fusion": {"wa": 66.5, "ua": 66.8, "weighted_f1": 0.663},
        "dl_fusion": {"wa": 65.8, "ua": 65.7, "weighted_f1": 0.665},
        "text_only": {"wa": 61.8, "weighted_f1": 0.620},
        "audio_only": {"wa": 62.5, "weighted_f1": 0.614},
    },
    "iemocap5": {
        "faf": {"wa": 64.6, "ua": 63.4, "weighted_f1": 0.644},
    },
}

# Table 3 (generalisation): trained on the first corpus, tested on the second.
TABLE3: dict[str, dict[str, dict[str, float]]] = {
    "mosi_to_youtube": {
        "hf": {"wa": 62.9, "weighted_f1": 0.627},
        "vf": {"wa": 64.7, "weighted_f1": 0.643},
        "faf": {"wa": 66.2, "weighted_f1": 0.665},
    },
    "iemocap_to_emotiw": {
        "hf": {"wa": 59.3, "weighted_f1": 0.584},
        "vf": {"wa": 60.8, "weighted_f1": 0.591},
        "faf": {"wa": 61.4, "weighted_f1": 0.608},
    },
}


def reference(key: str | None, table: int = 1) -> dict[str, dict[str, float]]:
    """The paper's numbers for a corpus key (``""``/None: none); raises on an unknown key."""
    if not key:
        return {}
    source = TABLE3 if table == 3 else TABLE1
    if key not in source:
        raise ValueError(f"no paper numbers under {key!r} for Table {table}; known: {sorted(source)}")
    return source[key]
