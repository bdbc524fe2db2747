"""``roitrack train-detector``: supervised YOLOv7 / YOLOv7-tiny training (see ``docs/detector.md``)."""

from __future__ import annotations

import argparse

HELP = "train YOLOv7 / YOLOv7-tiny on your labelled frames (MOTChallenge, YOLO datasets)"


def configure(parser: argparse.ArgumentParser) -> None:
    from training.detector.train import add_arguments

    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from training.detector.train import run as run_training

    return run_training(args)
