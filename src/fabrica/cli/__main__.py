"""`python -m fabrica.cli`: the same as the `fabrica` command."""

from . import main

main()
