"""Data parallelism with ``jax.sharding``: one mesh axis over all devices, the batch
split along it, parameters and optimiser state replicated.

Under ``jax.jit`` the train step keeps its single-device meaning (global batch,
global batch-norm statistics, mean loss over all examples); XLA inserts the
gradient all-reduce. Multi-host: call ``jax.distributed.initialize()`` first in
every process, then :func:`make_mesh` spans the devices of all hosts, and each
process passes its own slice of the global batch to :func:`shard_batch` (see
``benchmarks/README.md``, Scaling).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hmaf.models.packing import PACK_KEYS

DATA_AXIS = "data"
PyTree = Any


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places every array of ``tree`` (params, optimiser state, batch stats) on all devices."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, Any]:
    """Splits a batch along its first (batch) axis over the mesh's ``data`` axis.

    Args:
      batch: numpy arrays of the batch contract (:mod:`hmaf.batch`), the global
        batch on one host; on several hosts, this process's part of it.
      mesh: from :func:`make_mesh`.

    The packing arrays (:mod:`hmaf.models.packing`) index the whole batch, so they
    are replicated (one host only). String arrays (e.g. ``utt_id``) stay on the host.
    Raises ValueError when the batch size does not divide by the number of devices.
    """
    local_devices = mesh.shape[DATA_AXIS] // jax.process_count()
    batch_size = len(batch["label"])
    if batch_size % local_devices:
        raise ValueError(f"batch size {batch_size} does not divide over {local_devices} devices; "
                         f"use a multiple of {local_devices} per host")
    if jax.process_count() > 1 and any(k in batch for k in PACK_KEYS):
        raise ValueError("packed batches index one host's batch; use the padded layout on several hosts")
    split = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    out: dict[str, Any] = {}
    for key, value in batch.items():
        array = np.asarray(value)
        if array.dtype.kind in "OSU":
            out[key] = value
        elif key in PACK_KEYS:
            out[key] = _put(array, whole)
        else:
            out[key] = _put(array, split)
    return out


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(array, sharding)
    return jax.make_array_from_process_local_data(sharding, array)
