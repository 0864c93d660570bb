"""Data parallelism with ``jax.sharding``: one mesh axis over all devices, the batch
split along it, parameters and optimiser state replicated.

Under ``jax.jit`` the train step keeps its single-device meaning (global batch,
global batch-norm statistics, mean loss over all examples); XLA inserts the
gradient all-reduce. Multi-process: :func:`hmaf.training.distributed.initialize`
first in every process, then :func:`make_mesh` spans the devices of all processes
(ordered by process), and each process passes its own share of the global batch to
:func:`shard_batch` (see :mod:`hmaf.training.distributed` and ``docs/scaling.md``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hmaf.models.packing import PACK_KEYS

DATA_AXIS = "data"
PyTree = Any


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: every device of every
    process), ordered by process so that each process's devices are contiguous (its
    share of a batch is one block of rows)."""
    devices = jax.devices() if devices is None else list(devices)
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_devices(mesh: Mesh) -> tuple[int, int]:
    """``(first, count)``: the positions of this process's devices on the mesh."""
    mine = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    if not mine or mine != list(range(mine[0], mine[0] + len(mine))):
        raise ValueError(f"process {jax.process_index()}'s devices are not one block of the mesh: {mine}")
    return mine[0], len(mine)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places every array of ``tree`` (params, optimiser state, batch stats, PRNG keys)
    on all devices. With several processes every process must pass equal values (same
    seed, same restored checkpoint); each provides its own copy."""
    whole = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, whole)

    def put(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)  # already global and replicated: this process's copy
        return jax.make_array_from_process_local_data(whole, np.asarray(leaf))
    return jax.tree.map(put, tree)


def to_host(array: jax.Array) -> np.ndarray:
    """The whole value of a (possibly multi-process) array as numpy, on every process
    (``process_allgather`` when other processes hold parts of it)."""
    if not isinstance(array, jax.Array) or array.is_fully_addressable or array.is_fully_replicated:
        return np.asarray(array)
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, *, packed_per_device: bool = False) -> dict[str, Any]:
    """Splits a batch along its first (batch) axis over the mesh's ``data`` axis.

    Args:
      batch: numpy arrays of the batch contract (:mod:`hmaf.batch`), the global
        batch on one host; on several hosts, this process's part of it.
      mesh: from :func:`make_mesh`.
      packed_per_device: the packing arrays were made per device
        (:func:`hmaf.training.distributed.pack_per_device`): they are split over the
        devices like the batch. Otherwise they index the whole batch and are
        replicated (one process only).

    String arrays (e.g. ``utt_id``) stay on the host. Raises ValueError when the batch
    size does not divide by the number of devices.
    """
    local_devices = mesh.shape[DATA_AXIS] // jax.process_count()
    batch_size = len(batch["label"])
    if batch_size % local_devices:
        raise ValueError(f"batch size {batch_size} does not divide over {local_devices} devices; "
                         f"use a multiple of {local_devices} per host")
    if jax.process_count() > 1 and not packed_per_device and any(k in batch for k in PACK_KEYS):
        raise ValueError("a batch packed as a whole indexes one process's batch; on several processes pack "
                         "per device (hmaf.training.distributed.pack_per_device)")
    split = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    out: dict[str, Any] = {}
    for key, value in batch.items():
        array = np.asarray(value)
        if array.dtype.kind in "OSU":
            out[key] = value
        elif key in PACK_KEYS and not packed_per_device:
            out[key] = _put(array, whole)
        else:
            out[key] = _put(array, split)
    return out


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(array, sharding)
    return jax.make_array_from_process_local_data(sharding, array)
