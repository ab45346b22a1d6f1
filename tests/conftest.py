from __future__ import annotations

import sys
from pathlib import Path

# The tests' own helpers (tests/support) are imported as `support`.
sys.path.insert(0, str(Path(__file__).parent))
