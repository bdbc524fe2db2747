"""``roitrack bench mot ROOT...``: ours and the peers on every MOTChallenge sequence under the roots, scored per group
by each benchmark's own TrackEval protocol (combined figures, ranks, per-sequence rows), peer results cached.

``discover`` finds the sequences, their groups and score rules; ``cache`` keeps the peers' result files and
per-sequence TrackEval fields on disk; ``run`` tracks and scores; ``report`` writes the tables and JSON.
"""
