"""InfoNCE with several positives per anchor (SupCon form) over pseudo-identity labels."""

from __future__ import annotations

import torch


def info_nce(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    queue: torch.Tensor | None = None,
    queue_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over anchors of ``-mean_{p in P(i)} log softmax_{j != i}(z_i . z_j / T)[p]``.

    Args:
        z: ``[M,D]`` L2-normalised embeddings (all views of all ROIs of the batch).
        labels: ``[M]`` int; rows with equal labels are positives of each other (the other augmented view of the
            same ROI always shares its label; so does the same tracklet in another frame). Every other row of the
            batch (other objects of the same frame and of other frames) is a negative.
        queue: ``[K,D]`` embeddings of earlier batches (no gradient), extra negatives; ``queue_labels`` ``[K]``:
            an entry with the anchor's (non-negative) label is left out for that anchor, never a negative.
    Returns:
        scalar loss; anchors without any positive are skipped.
    """
    m = z.shape[0]
    sim = (z.float() @ z.float().T) / temperature
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    denom = sim
    if queue is not None and queue_labels is not None and len(queue):
        qsim = (z.float() @ queue.float().T) / temperature
        same = (labels[:, None] == queue_labels[None, :]) & (labels[:, None] >= 0)
        denom = torch.cat([sim, qsim.masked_fill(same, float("-inf"))], dim=1)
    log_prob = sim - torch.logsumexp(denom, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    npos = pos.sum(dim=1)
    has = npos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per = -(log_prob.masked_fill(~pos, 0.0)).sum(dim=1)[has] / npos[has]
    return per.mean()
