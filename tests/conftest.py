import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Config files are imported as `configs.*` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One persistent XLA compilation cache for the whole session: the suite is bound by compile
# time on CPU, and many tests (and the training processes they start) compile the same
# tiny models. pytest-xdist's workers and every subprocess inherit the variable, so they
# share one folder; the process that made it removes it at exit. tests/test_training.py
# alone: 286 s without, 225 s with (2-core VM, one after the other).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="hmaf-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
if "jax" in sys.modules:  # a plugin imported JAX before this file set the variable
    sys.modules["jax"].config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
