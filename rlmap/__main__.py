"""`python -m rlmap` runs the command line."""

from rlmap.cli import main

main()
