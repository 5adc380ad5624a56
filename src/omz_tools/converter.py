"""`python -m omz_tools.converter`: the same command as omz-converter."""

from omz_tools.cli.converter import main

if __name__ == "__main__":
    main()
