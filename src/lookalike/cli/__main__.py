"""`python -m lookalike.cli` is the `lookalike` command, as `python -m lookalike` is."""

import sys

from . import main

sys.exit(main())
