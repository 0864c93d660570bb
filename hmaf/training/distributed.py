"""Multi-process training with ``jax.distributed``: start-up, each process's share of a
global batch, and frame packing per device.

Every process runs the same program (``python -m hmaf.train`` with the same config
plus its ``config.distributed.process_id``). Every process iterates the same
deterministic stream of GLOBAL batches (same corpus, seed and step); process ``p`` of
``P`` keeps rows ``[p * B / P, (p + 1) * B / P)`` of each, so the global batch keeps
the class balance of the stream, and :func:`hmaf.training.sharding.shard_batch`
assembles the global ``jax.Array`` from the processes' shares
(``jax.make_array_from_process_local_data``). The devices of the mesh are ordered by
process, so that process ``p``'s devices hold exactly its rows.

With the packed layout every device's sub-batch of ``B / D`` examples is packed on its
own (:func:`pack_per_device`), with one static row count for all devices, so a
device's packed rows hold only its own frames. The packing arrays get a leading group
axis (one group per device) and index within their group; the model batches its gathers
over that axis (:class:`hmaf.models.encoders.AudioAttention`), so under ``jax.jit`` the
partitioned step gathers frames on each device from its own sub-batch only.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import jax
import numpy as np

from hmaf.models.packing import PACK_KEYS, first_fit_decreasing, pack_batch

_started = False


def initialize(config: Mapping[str, Any]) -> bool:
    """Joins the job described by ``config.distributed`` (once per process); returns
    whether this is a multi-process run.

    ``distributed.auto``: plain ``jax.distributed.initialize()``, which reads the
    cluster from the environment (Cloud TPU VMs, SLURM, Open MPI). Otherwise, with
    ``num_processes`` > 1: ``coordinator`` (``HOST:PORT`` of process 0), ``num_processes``
    and ``process_id``. On CPU the collectives between processes go through gloo.
    Must run before anything touches a JAX device.
    """
    global _started
    dist = config.get("distributed") or {}
    auto = bool(dist.get("auto", False))
    num_processes = int(dist.get("num_processes", 1))
    if not auto and num_processes <= 1:
        return False
    if _started or jax.distributed.is_initialized():
        return True
    # Only the CPU client reads this; accelerators use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if auto:
        jax.distributed.initialize()
    else:
        coordinator, process_id = str(dist.get("coordinator", "")), int(dist.get("process_id", 0))
        if not coordinator:
            raise ValueError("config.distributed.num_processes > 1 needs config.distributed.coordinator=HOST:PORT "
                             "(the address of process 0), or config.distributed.auto=True")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"config.distributed.process_id={process_id} must lie in [0, {num_processes})")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    _started = True
    logging.info("jax.distributed: process %d of %d, %d local of %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def is_primary() -> bool:
    """Process 0 writes the files every process would otherwise write alike."""
    return jax.process_index() == 0


def process_rows(batch_size: int, num_devices: int, first_device: int, local_devices: int) -> slice:
    """The rows of a global batch of ``batch_size`` that this process's devices hold
    (devices ``first_device .. first_device + local_devices - 1`` of ``num_devices``)."""
    if batch_size % num_devices:
        raise ValueError(f"batch size {batch_size} does not divide over {num_devices} devices "
                         f"({jax.process_count()} processes); use a multiple of {num_devices}")
    per_device = batch_size // num_devices
    return slice(first_device * per_device, (first_device + local_devices) * per_device)


def pad_to_multiple(batch: Mapping[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    """Repeats the last example until the batch size divides by ``multiple`` (an
    evaluation tail of 1 or 2 examples on 4 devices); callers drop the extra rows'
    predictions. Padding with a real example keeps every row finite."""
    size = len(batch["label"])
    extra = -size % multiple
    if not extra:
        return dict(batch)
    return {k: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) for k, v in batch.items()}


def pack_per_device(batch: Mapping[str, np.ndarray], layout, num_devices: int, first_device: int,
                    local_devices: int) -> dict[str, np.ndarray]:
    """This process's share of a global (unpacked) batch, each device's sub-batch packed
    on its own.

    Args:
      batch: the GLOBAL padded batch, ``frame_mask`` ``[B, N, L]`` (B divisible by
        ``num_devices``); packing arrays already in it are replaced.
      layout: a :class:`hmaf.data.layout.BatchLayout` (static rows per shape).
      num_devices, first_device, local_devices: the mesh, and this process's devices.

    Returns the rows of :func:`process_rows` plus, for ``D_l = local_devices`` devices
    of ``P`` rows of ``R`` frames each, ``pack_src``/``pack_mask``/``pack_start``/
    ``pack_end`` ``[D_l, P, R]`` and ``unpack_index`` ``[B / num_devices * D_l, N, L]``,
    indices within each device's own sub-batch (``pack_src`` into its
    ``B / num_devices * N * L`` frames, ``unpack_index`` into its ``P * R`` packed
    positions). ``P`` is the layout's plan for a
    ``[B / num_devices, N, L]`` batch, or, when a device's words need more, the next
    multiple of ``row_multiple`` that fits every device of the GLOBAL batch: each
    process sees the whole global batch, so all agree on ``P`` without talking.
    """
    batch = {k: v for k, v in batch.items() if k not in PACK_KEYS}
    b, n, l = np.shape(batch["frame_mask"])
    rows = process_rows(b, num_devices, first_device, local_devices)
    per_device = b // num_devices
    num_frames = np.asarray(batch["frame_mask"], bool).sum(-1).reshape(num_devices, -1)  # [D, b*N]
    needed = max(first_fit_decreasing(f[f > 0], l)[2] for f in num_frames)
    planned = layout.rows(per_device, n, l)
    multiple = max(layout.row_multiple, 1)
    plan = planned if needed <= planned else -(-needed // multiple) * multiple
    parts = []
    for d in range(first_device, first_device + local_devices):
        sub = {k: v[d * per_device:(d + 1) * per_device] for k, v in batch.items()}
        parts.append(pack_batch(sub, rows=plan, row_multiple=multiple))
    local = {k: v[rows] for k, v in batch.items()}
    local.update({k: np.stack([p[k] for p in parts]) for k in PACK_KEYS if k != "unpack_index"})
    local["unpack_index"] = np.concatenate([p["unpack_index"] for p in parts])
    return local
