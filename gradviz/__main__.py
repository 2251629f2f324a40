"""`python -m gradviz`: the command-line interface."""

import sys

from gradviz.cli import main

sys.exit(main())
