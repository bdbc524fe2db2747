"""Offline training: the ROI appearance encoder (``training.encoder``: ``roitrack train``, ``roitrack val``) and the
YOLOv7 detector (``training.detector``: ``roitrack train-detector``).

What both trainers use sits beside them, written once: ``distributed`` (torchrun set-up, rank helpers),
``sampler`` (every sample once per epoch across ranks), ``schedule`` (warm-up + cosine learning rate),
``checkpointing`` (resumable state as safetensors + JSON, never pickle), ``plot`` (loss and metric curves from the
JSONL log) and ``sources`` (videos, image folders, MOTChallenge sequences).
"""
