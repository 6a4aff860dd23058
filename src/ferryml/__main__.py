"""`python -m ferryml`: the `ferry` command, where its script is not on the PATH."""

from ferryml.cli import main

main()
