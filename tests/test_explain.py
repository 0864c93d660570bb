"""Figure 3: one cell per word and attention row in the PNG and in the HTML."""

import re

import matplotlib.image
import numpy as np
import pytest

import experiment_helpers as helpers
from hmaf import explain
from hmaf.analysis import figure3
from hmaf.inference import Prediction


def make_prediction(words=("what", "the", "hell"), rows=("t_alpha", "w_alpha", "s_alpha", "u_alpha")):
    n = len(words)
    rng = np.random.default_rng(0)
    attention = {k: list(rng.dirichlet(np.ones(n)) * (2 if k == "u_alpha" else 1)) for k in rows}
    frames = [list(rng.dirichlet(np.ones(k))) for k in range(3, 3 + n)]
    return Prediction(audio="a.wav", label="angry", probabilities={"angry": 0.7, "happy": 0.3}, words=list(words),
                      unknown_words=[], word_start=list(np.arange(n) * 0.3), word_end=list(np.arange(n) * 0.3 + 0.2),
                      transcript=" ".join(words), transcript_auto=False, attention=attention, frame_attention=frames)


@pytest.mark.parametrize("rows", [("t_alpha", "w_alpha", "s_alpha", "u_alpha"), ("t_alpha", "w_alpha")])
def test_png_has_one_cell_per_word_and_row(rows):
    prediction = make_prediction(("i", "do", "not", "like", "it"), rows)
    fig = figure3.draw(prediction)
    mesh = fig.axes[0].collections[0]
    assert mesh.get_array().shape == (len(rows), 5)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == prediction.words
    assert len(fig.axes[0].texts) == len(rows) * 5  # each cell prints its weight
    # colours are scaled per row: each row's largest weight is the darkest cell
    assert np.allclose(np.asarray(mesh.get_array()).max(axis=1), 1.0)


def test_frames_strip_has_every_frame():
    prediction = make_prediction()
    fig = figure3.draw(prediction, frames=True)
    assert len(fig.axes) == 2
    assert fig.axes[1].collections[0].get_array().size == sum(len(f) for f in prediction.frame_attention)


def test_html_has_one_cell_per_word_and_row_and_is_self_contained():
    prediction = make_prediction(("you're", "a", "<west-sider>"))
    page = figure3.html_page(prediction, frames=True)
    assert page.count('<td class="cell"') == 4 * 3
    for row in re.findall(r'<tr class="attention".*?</tr>', page):
        assert row.count('<td class="cell"') == 3
    assert page.count('<span class="frame"') == sum(len(f) for f in prediction.frame_attention)
    assert "&lt;west-sider&gt;" in page and "<west-sider>" not in page
    assert "<script" not in page and "http" not in page


def test_write_explanation_png_html_json(tmp_path):
    paths = explain.write_explanation(make_prediction(), tmp_path, frames=True)
    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[1] > image.shape[0]
    page = paths["html"].read_text()
    assert page.count('<td class="cell"') == 12 and "data:image/png;base64," in page
    assert '"hell"' in paths["json"].read_text()


def test_explain_cli_on_a_trained_model(tmp_path_factory, tmp_path):
    workdir = helpers.tiny_workdir(tmp_path_factory.getbasetemp() / "hmaf-tiny")
    wav = helpers.speech(tmp_path / "x.wav")
    assert explain.main(["--workdir", str(workdir), "--audio", str(wav), "--text", helpers.SENTENCE,
                         "--out", str(tmp_path / "fig"), "--frames"]) == 0
    page = (tmp_path / "fig" / "x.html").read_text()
    assert page.count('<td class="cell"') == 4 * 6
    assert (tmp_path / "fig" / "x.png").stat().st_size > 1000
    assert explain.main(["--workdir", str(workdir), "--audio", str(tmp_path / "no.wav"),
                         "--out", str(tmp_path / "fig")]) == 2
