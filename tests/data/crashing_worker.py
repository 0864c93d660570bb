"""A stand-in for hmaf.data.pool.process_row that kills its pool worker.

In its own light module so that a spawned worker can unpickle it without importing the
test modules (and TensorFlow with them).
"""

import os


def dying_process_row(*args):
    os._exit(1)
