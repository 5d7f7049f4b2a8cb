"""`python -m uptally` runs the command line."""

from uptally.cli import main

main()
