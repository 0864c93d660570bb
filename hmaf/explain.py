"""Command line: Figure 3 for any utterance.

    python -m hmaf.explain --workdir W --audio x.wav [--text "..."] --out DIR [--frames]

writes ``DIR/<name>.png`` (matplotlib), ``DIR/<name>.html`` (self-contained, the PNG
inlined) and ``DIR/<name>.json`` (the prediction with every attention): one row per
attention (text, audio word-level, shared, fine-tuned), one column per word.
``--frames`` adds the frame-level audio attention inside each word.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Sequence

from hmaf import cli
from hmaf.inference import Prediction, Predictor, PreprocessError
from hmaf.io import atomic_write_bytes


def write_explanation(prediction: Prediction, out_dir: str | os.PathLike, *, name: str | None = None,
                      frames: bool = False) -> dict[str, Path]:
    """Writes the PNG, HTML and JSON of one prediction; returns their paths."""
    import io

    import matplotlib.pyplot as plt

    from hmaf.analysis import figure3

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or Path(prediction.audio).stem or "utterance"
    fig = figure3.draw(prediction, frames=frames)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    plt.close(fig)
    png = buffer.getvalue()
    paths = {"png": out / f"{name}.png", "html": out / f"{name}.html", "json": out / f"{name}.json"}
    atomic_write_bytes(paths["png"], png)
    page = figure3.html_page(prediction, frames=frames, image_base64=base64.b64encode(png).decode("ascii"))
    atomic_write_bytes(paths["html"], page.encode("utf-8"))
    atomic_write_bytes(paths["json"], prediction.to_json().encode("utf-8"))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.explain", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a trained workdir")
    parser.add_argument("--audio", required=True, help="the recording")
    parser.add_argument("--text", default=None, help="what is said (default: speech recognition)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--name", default=None, help="file name stem (default: the audio's)")
    parser.add_argument("--frames", action="store_true", help="show frame-level attention within each word")
    parser.add_argument("--stage", default=None, help="text, audio or fusion (default: the last trained)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        predictor = Predictor.from_workdir(args.workdir, args.stage)
        prediction = predictor(args.audio, args.text, frame_attention=args.frames)
    except (FileNotFoundError, PreprocessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = write_explanation(prediction, args.out, name=args.name, frames=args.frames)
    print(f"{prediction.label}: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
