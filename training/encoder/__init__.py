"""Label-free training of the ROI appearance encoder (``roitrack train``) and its validation (``roitrack val``)."""
