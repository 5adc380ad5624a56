__version__ = "0.1.0"

# The name on the package index. "omz-tools" there is an unrelated project (1.1.0, 2024-01), so
# ours is published as omz-model-tools; the import package and the commands keep their names.
DISTRIBUTION = "omz-model-tools"


def pip_install(extra: str = "") -> str:
    """The command a message tells the user to run: "pip install 'omz-model-tools[accuracy]'"."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"
