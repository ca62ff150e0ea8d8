"""``python -m lstmviz``: the ``lstmviz`` command (also what ``torchrun -m lstmviz record ...`` runs)."""

import sys

from lstmviz.cli import main

sys.exit(main())
