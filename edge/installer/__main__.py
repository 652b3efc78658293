"""``python -m edge.installer COMMAND``: the installer's commands without the ``vgr`` dispatcher."""

from __future__ import annotations

import sys

from edge.installer.cli import main_for, register

if __name__ == "__main__":
    sys.exit(main_for(register, "python -m edge.installer"))
