"""``python -m gitmodel`` and the ``git-model`` executable.

The command line is imported inside :func:`main`, so that a Ctrl-C while it
loads (click, the commands) gets the same message as one during a command,
not a traceback.
"""
import signal
import sys

from gitmodel import interrupts


def main() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupts.raise_once)
    try:
        from gitmodel.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write(f"{interrupts.MESSAGE}\n")
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
