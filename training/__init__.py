"""Offline, label-free training of the ROI appearance encoder (``roitrack train``), plus ``roitrack val``."""
