"""Local stack without Docker: serves template.yaml over DynamoDB Local (see README)."""

import sys
from pathlib import Path

# The Lambda layer's package (meter) is importable here as it is in Lambda.
_SHARED = str(Path(__file__).resolve().parent.parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
