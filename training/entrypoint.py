"""The ``python -m training.<trainer>.train`` entry point both trainers share: parse, log, run, map errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


def main(
    prog: str,
    command: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` with ``add_arguments``, set up logging and ``run``; a ``RoitrackError`` prints
    ``roitrack <command>: error: ...`` and exits 2 (as the CLI does)."""
    from tracker_core.errors import RoitrackError

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except RoitrackError as exc:
        print(f"roitrack {command}: error: {exc}", file=sys.stderr)
        return 2
