"""`python -m omz_tools.info_dumper`: the same command as omz-info-dumper."""

from omz_tools.cli.info_dumper import main

if __name__ == "__main__":
    main()
