"""Paired comparison of two sets of predictions on the same examples.

    python -m hmaf.compare --a A0.jsonl,A1.jsonl --b B0.jsonl,B1.jsonl [--json]

Each file is one run's per-example predictions (``hmaf.evaluate --predictions`` or
``hmaf.experiment``'s ``predictions.jsonl``: rows with ``id``, ``label``, ``predicted``);
the i-th file of ``--a`` is paired with the i-th of ``--b`` (e.g. the same fold evaluated
by two models, or one model on two preparations of a corpus) on the ids both hold.
Prints the accuracies, the paired bootstrap 95 % CI of the difference, the exact McNemar
test over all pairs and the sign / Wilcoxon tests over runs (:func:`hmaf.analysis.stats.compare`).
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

import numpy as np

from hmaf import cli
from hmaf.analysis import stats
from hmaf.analysis.generalisation import correctness


def read_correctness(path: str) -> dict[str, bool]:
    """``{id: label == predicted}`` of a predictions file; ValueError names the file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line) if line.strip() else None
                if row is not None and not {"id", "label", "predicted"} <= set(row):
                    raise ValueError(f"missing {sorted({'id', 'label', 'predicted'} - set(row))}")
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path} line {number}: not a prediction row with id, label and predicted ({e})")
            rows += [row] if row is not None else []
    return correctness(rows)


def paired_runs(a_files: Sequence[str], b_files: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{run: (correct_a, correct_b)}`` over the ids each pair of files shares."""
    if len(a_files) != len(b_files) or not a_files:
        raise ValueError(f"--a and --b need the same number of files (one per run), got {len(a_files)} and "
                         f"{len(b_files)}")
    runs = {}
    for i, (a_path, b_path) in enumerate(zip(a_files, b_files)):
        a, b = read_correctness(a_path), read_correctness(b_path)
        ids = sorted(set(a) & set(b))
        if not ids:
            raise ValueError(f"{a_path} and {b_path} share no example id")
        runs[f"run{i}"] = (np.array([a[k] for k in ids]), np.array([b[k] for k in ids]))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--a", required=True, help="comma-separated predictions files of A, one per run")
    parser.add_argument("--b", required=True, help="comma-separated predictions files of B, in the same order")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    try:
        result = stats.compare(paired_runs(args.a.split(","), args.b.split(",")))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    low, high = result["bootstrap"]["low"], result["bootstrap"]["high"]
    m = result["mcnemar"]
    print(f"{result['runs']} run(s), {result['examples']} paired examples: accuracy A "
          f"{100 * result['accuracy_a']:.1f} %, B {100 * result['accuracy_b']:.1f} %; A - B "
          f"{100 * (result['accuracy_a'] - result['accuracy_b']):+.1f} points [95 % CI {100 * low:+.1f}, "
          f"{100 * high:+.1f}]; exact McNemar p = {m['p']:.3g} (only A right {m['b']}, only B right {m['c']}); "
          f"runs A / B better {result['runs_a_better']} / {result['runs_b_better']}, sign test p = "
          f"{result['sign_test_p']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
