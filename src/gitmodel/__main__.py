"""``python -m gitmodel`` and the ``git-model`` executable.

The command line is imported inside :func:`main`, so that a Ctrl-C while it
loads (click, the commands) gets the same message as one during a command,
not a traceback.
"""
import sys

INTERRUPTED = "Interrupted: nothing was written."


def main() -> None:
    try:
        from gitmodel.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write(f"{INTERRUPTED}\n")
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
