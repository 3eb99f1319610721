"""``python -m autounet`` runs the command-line interface."""

import sys

from autounet.cli import main

sys.exit(main())
