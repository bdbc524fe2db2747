"""Supervised YOLOv7 / YOLOv7-tiny training (``roitrack train-detector``): data and ignore regions, augmentation,
anchors, OTA label assignment and loss, EMA, held-out early stopping; writes the project's detector weights."""
