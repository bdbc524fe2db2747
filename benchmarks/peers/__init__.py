"""Peer benchmark: the same detections through roitrack's tracker and through the trackers people use.

``python -m benchmarks.peers --seq DIR --det FILE [--score-scale F]`` (see ``docs/tracking.md``). The peers
(roboflow ``trackers``, ``supervision``, ``norfair``, ``deep-sort-realtime``) come from the ``bench`` extra; the
service never needs them.
"""
