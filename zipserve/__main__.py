"""`python -m zipserve` is the `zipserve` command."""

from .cli import main

main()
