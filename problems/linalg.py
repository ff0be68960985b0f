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
    stall_iters: int = 500,
) -> tuple[Tensor, float]:
    """Solve H q = rhs (H symmetric positive definite) by CG until ‖H q − rhs‖ ≤ tol.

    Each iteration costs one ``matvec`` (the caller's counted Hessian-vector product); a warm start
    x0 costs one more. Stops early when ‖r‖ has not improved by 0.1 % in ``stall_iters`` steps (a
    tolerance below the dtype's resolution). Returns (q, final residual norm).
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
    best, best_k = rr, 0
    for k in range(1, max_iters + 1):
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
        if rr < best * (1.0 - 2e-3):  # ‖r‖² down by 0.2 % (‖r‖ by 0.1 %)
            best, best_k = rr, k
        elif k - best_k >= stall_iters:
            break  # no progress: tol is below what the dtype resolves (e.g. float32)
    return x, rr**0.5
