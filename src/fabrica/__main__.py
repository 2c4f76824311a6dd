"""`python -m fabrica`: the same as the `fabrica` command."""

from .cli import main

main()
