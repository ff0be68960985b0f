"""Small linear-algebra kernels shared by problems and solvers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    rhs: Tensor,
    x0: Tensor | None,
    tol: float,
    max_iters: int,
) -> tuple[Tensor, float]:
    """Solve H q = rhs (H symmetric positive definite) by CG until ‖H q − rhs‖ ≤ tol.

    Each iteration costs one ``matvec`` (the caller's counted Hessian-vector product); a warm start
    x0 costs one more. Returns (q, final residual norm).
    """
    if x0 is None:
        x = torch.zeros_like(rhs)
        r = rhs.clone()
    else:
        x = x0.clone()
        r = rhs - matvec(x)
    rr = float(torch.vdot(r.flatten(), r.flatten()))
    if rr**0.5 <= tol:
        return x, rr**0.5
    p = r.clone()
    for _ in range(max_iters):
        hp = matvec(p)
        php = float(torch.vdot(p.flatten(), hp.flatten()))
        if not php > 0.0:  # H not positive definite on p, p = 0, or NaN: stop, x is the best we have
            break
        a = rr / php
        x.add_(p, alpha=a)
        r.add_(hp, alpha=-a)
        rr_new = float(torch.vdot(r.flatten(), r.flatten()))
        if rr_new**0.5 <= tol:
            rr = rr_new
            break
        p.mul_(rr_new / rr).add_(r)
        rr = rr_new
    return x, rr**0.5
