"""`python -m omz_tools.downloader`: the same command as omz-downloader."""

from omz_tools.cli.downloader import main

if __name__ == "__main__":
    main()
