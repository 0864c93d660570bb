import os
import sys
from pathlib import Path

# Config files are imported as `configs.*` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
