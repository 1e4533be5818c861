"""`python -m serfast_cli` runs the `serfast` command."""

from .main import main

if __name__ == "__main__":  # worker processes import this module again: do nothing there
    main()
