"""Stand-ins for hmaf.data.pool.process_row that kill or block their pool worker.

In their own light module so that a spawned worker can unpickle them without importing
the test modules (and TensorFlow with them).
"""

import os
import time


def dying_process_row(*args):
    os._exit(1)


def sleeping_process_row(row, *args):
    """Says it started (a file named after the row's id in the folder $HMAF_TEST_MARKS), then blocks."""
    with open(os.path.join(os.environ["HMAF_TEST_MARKS"], row.id), "w"):
        pass
    time.sleep(120)
