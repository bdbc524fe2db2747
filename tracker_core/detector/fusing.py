"""Inference-time re-parameterisation as pure functions on weights.

* :func:`fold_batchnorm`: ``bn(conv(x)) == conv'(x)`` with ``W' = W * g/sqrt(v+eps)``,
  ``b' = beta + (b - mean) * g/sqrt(v+eps)``.
* :func:`repconv_kernel`: the single 3x3 kernel + bias equal to ``bn(conv3x3) + bn(conv1x1) [+ bn(identity)]``.
* :func:`fold_implicit`: ``im * conv(x + ia) == conv'(x)`` with ``b' = im * (b + W @ ia)``, ``W' = im * W``.

The arithmetic runs in float64 and is cast back to the layer's dtype, so fusing adds only rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(x) == x * scale + shift`` (eval mode), float64."""
    assert bn.running_mean is not None and bn.running_var is not None
    mean = bn.running_mean.double()
    var = bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``Conv2d`` (with bias) computing ``bn(conv(x))`` in eval mode."""
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight.double() * scale.view(-1, 1, 1, 1)
    b = shift if conv.bias is None else shift + conv.bias.double() * scale
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        conv.groups,
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(w.to(conv.weight.dtype))
    assert fused.bias is not None
    fused.bias.copy_(b.to(conv.weight.dtype))
    return fused


@torch.no_grad()
def repconv_kernel(
    dense: nn.Conv2d,
    dense_bn: nn.BatchNorm2d,
    one: nn.Conv2d,
    one_bn: nn.BatchNorm2d,
    identity_bn: nn.BatchNorm2d | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight [C_out,C_in,3,3], bias [C_out])`` of the one conv equal to all RepConv branches."""
    s3, t3 = _bn_scale_shift(dense_bn)
    s1, t1 = _bn_scale_shift(one_bn)
    w = dense.weight.double() * s3.view(-1, 1, 1, 1)
    w = w + F.pad(one.weight.double() * s1.view(-1, 1, 1, 1), [1, 1, 1, 1])
    b = t3 + t1
    if identity_bn is not None:
        si, ti = _bn_scale_shift(identity_bn)
        eye = torch.zeros_like(w)
        c = min(w.shape[0], w.shape[1])
        idx = torch.arange(c, device=w.device)
        eye[idx, idx, 1, 1] = 1.0
        w = w + eye * si.view(-1, 1, 1, 1)
        b = b + ti
    return w.to(dense.weight.dtype), b.to(dense.weight.dtype)


@torch.no_grad()
def fold_implicit(conv: nn.Conv2d, implicit_a: torch.Tensor, implicit_m: torch.Tensor) -> None:
    """In place: make the 1x1 ``conv`` compute ``implicit_m * conv(x + implicit_a)``."""
    assert conv.bias is not None
    if tuple(conv.weight.shape[2:]) != (1, 1):
        raise ValueError("fold_implicit needs a 1x1 convolution")
    c_out, c_in = conv.weight.shape[:2]
    w = conv.weight.double().reshape(c_out, c_in)
    a = implicit_a.double().reshape(c_in)
    m = implicit_m.double().reshape(c_out)
    b = (conv.bias.double() + w @ a) * m
    conv.weight.copy_((conv.weight.double() * m.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    conv.bias.copy_(b.to(conv.bias.dtype))
