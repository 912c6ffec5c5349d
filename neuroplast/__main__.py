"""``python -m neuroplast``: the same as the ``neuroplast`` command."""

import sys

from neuroplast.cli import main

sys.exit(main())
