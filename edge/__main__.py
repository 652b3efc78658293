"""``python -m edge COMMAND``: the tracker's command line (what ``vgr-agent.pyz`` runs).

The lean way to start an agent in development: the ``vgr`` dispatcher loads
every program's commands (the cloud's too) before it runs one, which costs an
agent process about 20 MB of RSS it never uses (see ``docs/bench-edge.md``).
"""

from __future__ import annotations

import sys

from edge.installer.entry import main

if __name__ == "__main__":
    sys.exit(main())
