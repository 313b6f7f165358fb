"""`python -m zipserve` is the `zipserve` command."""

from zipserve.cli import main

main()
