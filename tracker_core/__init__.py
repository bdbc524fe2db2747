"""roitrack's core library: detector, ROI features, appearance encoder and tracker.

Data path inside this package::

    frame (HxWx3 uint8 RGB)
      -> letterbox.letterbox            (tracker_core/letterbox.py)
      -> detector.Detector               (tracker_core/detector/: YOLOv7 forward + decode + NMS, feature tap)
      -> features.roi_features           (tracker_core/features/: ROI Align on the tap -> [N,C,10,10])
      -> encoder.RoiEncoder              (tracker_core/encoder/: [N,C,10,10] -> [N,128] L2-normalised)
      -> tracking.Tracker                (tracker_core/tracking/: Kalman + staged Hungarian association)

Boxes are ``xyxy`` float pixels of the original frame everywhere inside; conversions happen at the edges.
"""

__version__ = "0.1.0"
