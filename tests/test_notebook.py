"""notebooks/restore_and_explain.ipynb runs top to bottom on a tiny checkpoint."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import experiment_helpers as helpers

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "restore_and_explain.ipynb"


def test_notebook_restores_and_draws(tmp_path_factory, tmp_path, monkeypatch):
    workdir = helpers.tiny_workdir(tmp_path_factory.getbasetemp() / "hmaf-tiny")
    wav = helpers.speech(tmp_path / "x.wav")
    monkeypatch.setenv("HMAF_WORKDIR", str(workdir))
    monkeypatch.setenv("HMAF_AUDIO", str(wav))
    monkeypatch.setenv("HMAF_TEXT", helpers.SENTENCE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html and html[-1].count('<td class="cell"') == 4 * 6
