"""Run the chat server: `python run.py` (configuration from the environment; see README)."""

import sys

from server.main import main

if __name__ == "__main__":
    sys.exit(main())
