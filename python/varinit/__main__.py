"""`python -m varinit`: the command line (see varinit.cli)."""
import sys

from .cli import main

sys.exit(main())
