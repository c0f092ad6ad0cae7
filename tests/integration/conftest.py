"""Put this folder on sys.path, so that the lab tests in its subfolders can import lab_node."""

import sys
from pathlib import Path

FOLDER = str(Path(__file__).resolve().parent)
if FOLDER not in sys.path:
    sys.path.insert(0, FOLDER)
