"""Figure 3 of the paper: the word-level attentions of one utterance, as a PNG
(matplotlib, Agg) and as a self-contained HTML page.

One row per attention (text ``t_alpha``, audio word-level ``w_alpha``, shared
``s_alpha``, fine-tuned ``u_alpha``; the rows the model has), one column per word, the
colour the weight. Colours are scaled per row (the row's largest weight is the darkest),
since ``u_alpha`` sums to 2 and the others to 1; every cell also prints its weight.
Optionally a strip below shows the frame-level audio attention ``f_alpha`` inside each
word.
"""

from __future__ import annotations

import html
import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors  # noqa: E402

from hmaf.inference import WORD_ATTENTIONS, Prediction  # noqa: E402

ROW_TITLES = {"t_alpha": "text (t_α)", "w_alpha": "audio (w_α)", "s_alpha": "shared (s_α)",
              "u_alpha": "fine-tuned (u_α)"}
CMAP = "Reds"


def attention_rows(prediction: Prediction) -> tuple[list[str], np.ndarray]:
    """The attention names present, in Figure 3 order, and their weights ``[rows, N]``."""
    names = [k for k in WORD_ATTENTIONS if k in prediction.attention]
    return names, np.asarray([prediction.attention[k] for k in names], np.float64).reshape(len(names), -1)


def _row_scaled(weights: np.ndarray) -> np.ndarray:
    top = weights.max(axis=-1, keepdims=True)
    return np.divide(weights, top, out=np.zeros_like(weights), where=top > 0)


def draw(prediction: Prediction, *, frames: bool = False, title: str | None = None):
    """Returns a matplotlib Figure; ``fig.axes[0]`` holds one QuadMesh cell per word and
    attention row; with ``frames`` ``fig.axes[1]`` shows f_alpha inside each word."""
    names, weights = attention_rows(prediction)
    n = len(prediction.words)
    show_frames = frames and prediction.frame_attention is not None
    width = max(4.0, 0.9 * n + 2.0)
    height = 0.55 * len(names) + 1.4 + (1.0 if show_frames else 0.0)
    fig = plt.figure(figsize=(width, height))
    grid = fig.add_gridspec(2 if show_frames else 1, 1, height_ratios=[len(names), 1.4] if show_frames else None)
    ax = fig.add_subplot(grid[0])
    ax.pcolormesh(np.arange(n + 1), np.arange(len(names) + 1), _row_scaled(weights), cmap=CMAP, vmin=0, vmax=1,
                  edgecolors="white", linewidth=1.5)
    for r in range(len(names)):
        for i in range(n):
            scaled = _row_scaled(weights)[r, i]
            ax.text(i + 0.5, r + 0.5, f"{weights[r, i]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if scaled > 0.6 else "black")
    ax.set_xticks(np.arange(n) + 0.5, prediction.words, rotation=30 if n > 8 else 0)
    ax.set_yticks(np.arange(len(names)) + 0.5, [ROW_TITLES[k] for k in names])
    ax.set_xlim(0, n)
    ax.set_ylim(len(names), 0)  # first row on top, as in the paper
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    probability = prediction.probabilities[prediction.label]
    ax.set_title(title or f"{prediction.label} ({probability:.2f}): {prediction.transcript}", fontsize=10)
    if show_frames:
        fax = fig.add_subplot(grid[1])
        strip = np.concatenate([_row_scaled(np.asarray(f, np.float64)[None])[0] for f in prediction.frame_attention])
        bounds = np.cumsum([0] + [len(f) for f in prediction.frame_attention])
        fax.pcolormesh(np.arange(len(strip) + 1), [0, 1], strip[None], cmap="Blues", vmin=0, vmax=1)
        for b in bounds[1:-1]:
            fax.axvline(b, color="black", linewidth=1)
        fax.set_xticks((bounds[:-1] + bounds[1:]) / 2, prediction.words, rotation=30 if n > 8 else 0, fontsize=8)
        fax.set_yticks([0.5], ["frames (f_α)"])
        fax.set_xlim(0, len(strip))
        fax.tick_params(length=0)
    fig.tight_layout()
    return fig


def _hex(value: float, cmap: str = CMAP) -> str:
    return colors.to_hex(plt.get_cmap(cmap)(float(value)))


def _text_colour(value: float) -> str:
    return "#fff" if value > 0.6 else "#000"


def html_page(prediction: Prediction, *, frames: bool = False, image_base64: str | None = None) -> str:
    """A self-contained HTML page (inline CSS, no scripts or links): a table with one
    ``<td class="cell">`` per word and attention row; with ``frames`` one more row whose
    cells hold one ``<span class="frame">`` per frame."""
    names, weights = attention_rows(prediction)
    scaled = _row_scaled(weights)
    esc = html.escape
    probs = ", ".join(f"{esc(k)} {v:.3f}" for k, v in prediction.probabilities.items())
    rows = ["<tr><th></th>" + "".join(f'<th class="word">{esc(w)}</th>' for w in prediction.words) + "</tr>"]
    for r, name in enumerate(names):
        cells = "".join(
            f'<td class="cell" title="{esc(name)} {weights[r, i]:.4f}" style="background:{_hex(scaled[r, i])};'
            f'color:{_text_colour(scaled[r, i])}">{weights[r, i]:.2f}</td>'
            for i in range(len(prediction.words)))
        rows.append(f'<tr class="attention" data-name="{esc(name)}"><th>{esc(ROW_TITLES[name])}</th>{cells}</tr>')
    if frames and prediction.frame_attention is not None:
        cells = []
        for word_weights in prediction.frame_attention:
            w = _row_scaled(np.asarray(word_weights, np.float64)[None])[0]
            spans = "".join(f'<span class="frame" title="{a:.4f}" style="background:{_hex(s, "Blues")}"></span>'
                            for a, s in zip(word_weights, w))
            cells.append(f'<td class="frames">{spans}</td>')
        rows.append('<tr class="frame-attention"><th>frames (f_α)</th>' + "".join(cells) + "</tr>")
    image = (f'<p><img alt="Figure 3" src="data:image/png;base64,{image_base64}"></p>' if image_base64 else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Attention: {esc(prediction.transcript)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: separate; border-spacing: 3px; }}
th {{ font-weight: normal; padding: 0 0.6em; text-align: right; }}
th.word {{ text-align: center; font-weight: bold; }}
td.cell {{ min-width: 3.5em; text-align: center; padding: 0.4em; font-size: 0.85em; }}
td.frames {{ white-space: nowrap; }}
span.frame {{ display: inline-block; width: 3px; height: 1.6em; }}
img {{ max-width: 100%; }}
</style></head><body>
<h2>{esc(prediction.label)} <small>({probs})</small></h2>
<p>{esc(prediction.transcript)}{' <em>(speech recognition)</em>' if prediction.transcript_auto else ''}</p>
<table>
{chr(10).join(rows)}
</table>
<p><small>Colour: weight relative to the largest of its row; numbers: the weights.</small></p>
{image}
</body></html>
"""

