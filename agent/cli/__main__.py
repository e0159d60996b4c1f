"""``python -m agent.cli``: the ``station-agent`` command."""

import sys

from agent.cli.main import main

sys.exit(main())
