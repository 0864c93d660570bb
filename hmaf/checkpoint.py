"""Orbax checkpoints of a stage, and :func:`load` for notebooks.

A stage directory holds ``checkpoints/latest`` (the full train state, to resume after
a crash or kill) and ``checkpoints/best`` (the variables chosen on validation), each
with the run's config and a ``model.json`` that says how to rebuild the model. So

    model, variables, config = hmaf.checkpoint.load(workdir)
    out = model.apply(variables, batch)

restores a trained model with no training code: this module needs jax, flax, orbax
and ml_collections only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from hmaf.models import build_model

PyTree = Any
STAGE_ORDER = ("fusion", "audio", "text")  # the last stage of a run is the one to load
MISMATCH_HINT = ("the run's config differs from the one that saved it (a model size, or model.prosody: a run "
                 "started before the prosody columns needs --config.model.prosody=False); resume with that "
                 "config (config.json in the workdir) or start a new --workdir")


class CheckpointMismatchError(ValueError):
    """A checkpoint holds variables of other shapes than this run's model."""


def _shapes(tree: PyTree) -> dict[tuple, tuple]:
    """Leaf shapes by path, the path's keys as plain names and indices (so a saved tree's
    metadata and a live train state, dicts and dataclasses, compare)."""
    def name(key):
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                return getattr(key, attr)
        return str(key)

    return {tuple(name(k) for k in path): tuple(leaf.shape if hasattr(leaf, "shape") else np.shape(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_shapes(expected: PyTree, restored: PyTree, what: str) -> None:
    """Raises :class:`CheckpointMismatchError` naming the first leaves of ``restored`` (arrays,
    or the array metadata of a saved tree) whose path or shape differs from ``expected``
    (``what``: the checkpoint, for the message)."""
    want, have = _shapes(expected), _shapes(restored)
    diffs = [f"{'/'.join(map(str, k))}: saved {have.get(k, 'nothing')}, this model {want.get(k, 'nothing')}"
             for k in sorted(set(want) | set(have), key=lambda k: ("params" not in k, str(k)))
             if want.get(k) != have.get(k)]
    if diffs:
        raise CheckpointMismatchError(f"{what} does not fit this run's model ({len(diffs)} variables differ: "
                                      f"{'; '.join(diffs[:3])}{'; ...' if len(diffs) > 3 else ''}): {MISMATCH_HINT}")


def _manager(directory: Path, *, read_only: bool = False,
             item_handlers: dict[str, Any] | None = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=not read_only, read_only=read_only,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.absolute(), options=options, item_handlers=item_handlers)


class StageCheckpoints:
    """Latest and best checkpoints of one training stage."""

    def __init__(self, stage_dir: str | os.PathLike):
        self.dir = Path(stage_dir)
        # Handlers named up front, so that the latest state's metadata (its shapes) can
        # be read before restoring it.
        self.latest = _manager(self.dir / "checkpoints" / "latest", item_handlers={
            "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})
        self.best = _manager(self.dir / "checkpoints" / "best")

    def save_latest(self, step: int, state: PyTree, meta: dict) -> None:
        self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                       meta=ocp.args.JsonSave(meta)), force=True)
        self.latest.wait_until_finished()

    def save_best(self, step: int, variables: PyTree, model_spec: dict, config: dict) -> None:
        self.best.save(step, args=ocp.args.Composite(
            variables=ocp.args.StandardSave(variables), model=ocp.args.JsonSave(model_spec),
            config=ocp.args.JsonSave(config)), force=True)
        self.best.wait_until_finished()

    def restore_latest(self, target_state: PyTree) -> tuple[PyTree, dict] | None:
        """(state, meta) of the latest checkpoint, shaped like ``target_state``; None if none."""
        step = self.latest.latest_step()
        if step is None:
            return None
        where = f"{self.dir / 'checkpoints' / 'latest'} (step {step})"
        # Checked before Orbax restores: its own shape error names neither the checkpoint
        # nor the cause, and a restore it abandons leaves reads that print tracebacks at exit.
        check_shapes(target_state, self.latest.item_metadata(step)["state"], where)
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def restore_best_variables(self, target: PyTree | None = None) -> PyTree:
        return _restore_best(self.best, target)["variables"]

    def close(self) -> None:
        self.latest.close()
        self.best.close()

    def __enter__(self) -> "StageCheckpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # Orbax's background threads end with it, before the interpreter does


def _restore_best(manager: ocp.CheckpointManager, target: PyTree | None = None) -> dict:
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no best checkpoint in {manager.directory}")
    return manager.restore(step, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(target), model=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))


def find_stage_dir(workdir: str | os.PathLike, stage: str | None = None) -> Path:
    """The stage directory to load: ``stage`` if given, else the run's last stage."""
    workdir = Path(workdir)
    stages = [stage] if stage else list(STAGE_ORDER)
    for name in stages:
        if (workdir / name / "checkpoints" / "best").is_dir():
            return workdir / name
    raise FileNotFoundError(
        f"{workdir} holds no trained stage (looked for {', '.join(s + '/checkpoints/best' for s in stages)})")


def load(workdir: str | os.PathLike, stage: str | None = None):
    """Restores a trained model for inference.

    Args:
      workdir: the ``--workdir`` of ``python -m hmaf.train``.
      stage: ``text``, ``audio`` or ``fusion``; default the last stage trained.

    Returns:
      ``(model, variables, config)``: a Flax module, its ``{'params', 'batch_stats'}``
      and the run's ``ml_collections.ConfigDict``. Call
      ``model.apply(variables, batch, train=False)`` on a batch of :mod:`hmaf.batch`.
    """
    stage_dir = find_stage_dir(workdir, stage)
    manager = _manager(stage_dir / "checkpoints" / "best", read_only=True)
    try:
        restored = _restore_best(manager)
    finally:
        manager.close()
    spec = dict(restored["model"])
    model = build_model(spec.pop("name"), **spec)
    config = ml_collections.ConfigDict(json.loads(json.dumps(restored["config"])))
    return model, restored["variables"], config
