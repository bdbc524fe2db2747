"""``roitrack train``: learn the ROI appearance encoder without identity labels (see ``docs/encoder.md``)."""

from __future__ import annotations

import argparse

HELP = "train the ROI appearance encoder without identity labels"


def configure(parser: argparse.ArgumentParser) -> None:
    from training.encoder.train import add_arguments

    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from training.encoder.train import run as run_training

    return run_training(args)
