"""``python -m rt2_policy.serving`` runs ``rt2-serve``."""

import sys

from rt2_policy.serving.server import main

sys.exit(main())
