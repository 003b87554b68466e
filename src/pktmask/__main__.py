"""Entry point for ``python -m pktmask``."""

from pktmask.cli import main

if __name__ == "__main__":
    main()
