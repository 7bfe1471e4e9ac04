"""tests/chaos: chaos_support (and, through it, tests/e2e/e2e_support) importable by bare name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
