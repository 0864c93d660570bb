"""Data parallelism: a train step on 8 simulated CPU devices equals the 1-device step.

The device count must be set before jax is imported, so the check runs in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json
    import jax
    import numpy as np
    from hmaf.data.toy import random_batch
    from hmaf.models import build_model
    from hmaf.models.packing import pack_batch
    from hmaf.training.sharding import make_mesh, replicate, shard_batch
    from hmaf.training.steps import create_train_state, make_train_step

    assert jax.device_count() == 8, jax.devices()
    batch = random_batch(np.random.default_rng(0), 16, 6, 10, vocab_size=20, num_classes=3)
    model = build_model("faf", num_classes=3, vocab_size=20, embed_dim=8, hidden=7, attention_dim=6,
                        fusion_dim=5, filters=4, widths=(2, 3))
    mesh = make_mesh()
    results = {}
    for layout, b in (("padded", batch), ("packed", pack_batch(batch))):
        step = make_train_step(model)
        one = jax.device_put(create_train_state(model, batch), jax.devices()[0])
        one, m_one = step(one, jax.device_put(b, jax.devices()[0]), jax.random.key(1))
        sharded_batch = shard_batch(b, mesh)
        many = replicate(create_train_state(model, batch), mesh)
        many, m_many = step(many, sharded_batch, jax.random.key(1))
        diffs = jax.tree.leaves(jax.tree.map(lambda a, c: float(np.max(np.abs(np.asarray(a) - np.asarray(c)))),
                                             one.params, many.params))
        results[layout] = dict(
            loss_one=float(m_one["loss"]), loss_many=float(m_many["loss"]),
            max_param_diff=max(diffs), grad_norm_one=float(m_one["grad_norm"]),
            grad_norm_many=float(m_many["grad_norm"]),
            frames_shards=len(sharded_batch["frames"].addressable_shards),
            frames_shard_shape=list(sharded_batch["frames"].addressable_shards[0].data.shape),
            params_devices=len(jax.tree.leaves(many.params)[0].sharding.device_set),
            params_replicated=bool(jax.tree.leaves(many.params)[0].sharding.is_fully_replicated))
    try:
        shard_batch(random_batch(np.random.default_rng(0), 12, 6, 10), mesh)
        results["indivisible_error"] = None
    except ValueError as e:
        results["indivisible_error"] = str(e)
    print("RESULT " + json.dumps(results))
""")


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_eight_devices_equal_one_device(results, layout):
    r = results[layout]
    assert r["frames_shards"] == 8 and r["frames_shard_shape"][0] == 2  # 16 examples over 8 devices
    assert r["params_devices"] == 8 and r["params_replicated"]
    np.testing.assert_allclose(r["loss_many"], r["loss_one"], rtol=1e-5)
    assert r["grad_norm_one"] > 0
    np.testing.assert_allclose(r["grad_norm_many"], r["grad_norm_one"], rtol=1e-5)
    assert r["max_param_diff"] < 1e-5


def test_indivisible_batch_is_a_clear_error(results):
    assert "does not divide over 8 devices" in results["indivisible_error"]
