"""ROI features: boxes in original-frame pixels cut out of detector feature maps with ROI Align.

One output size, :data:`ROI_SIZE` (10x10), is used by training, validation and serving alike.
"""

from tracker_core.features.color import HIST_BINS, box_histograms, hsv_histogram, rgb_to_hsv
from tracker_core.features.extractor import RoiFeatureExtractor, spec_roi_features
from tracker_core.features.roi_align import PIXEL_STRIDE, ROI_SIZE, boxes_to_rois, roi_features
from tracker_core.features.spec import TAP_NAMES, FeatureSpec, parse_feature_spec

__all__ = [
    "HIST_BINS",
    "PIXEL_STRIDE",
    "ROI_SIZE",
    "TAP_NAMES",
    "FeatureSpec",
    "RoiFeatureExtractor",
    "box_histograms",
    "boxes_to_rois",
    "hsv_histogram",
    "parse_feature_spec",
    "rgb_to_hsv",
    "roi_features",
    "spec_roi_features",
]
