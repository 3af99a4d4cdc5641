"""``python -m local``: see local/run.py."""

import sys

from local.run import main

sys.exit(main())
