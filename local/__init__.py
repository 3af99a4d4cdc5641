"""Local stack without Docker: serves template.yaml over DynamoDB Local (see docs/development.md)."""

import sys

from local.template import Stack

# Lambda puts each layer's content on the import path; so does the local stack.
for _layer in Stack().layer_dirs():
    if str(_layer) not in sys.path:
        sys.path.insert(0, str(_layer))
