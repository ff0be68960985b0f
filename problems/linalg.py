"""Small linear-algebra kernels shared by problems and solvers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from problems.lower import FLOOR_FACTOR, STALL_ITERS, STALL_MARGIN, default_check_every


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    rhs: Tensor,
    x0: Tensor | None,
    tol: float,
    max_iters: int,
    precond: Callable[[Tensor], Tensor] | None = None,
    check_every: int | None = None,
) -> tuple[Tensor, float]:
    """Solve H q = rhs (H symmetric positive definite) by (preconditioned) CG until ‖H q − rhs‖ ≤ tol.

    Each iteration costs one ``matvec`` (the caller's counted Hessian-vector product); a warm start
    x0 costs one more. ``precond`` applies M⁻¹ for a symmetric positive definite M ≈ H (one extra
    application per iteration); the test is on the true residual ‖r‖ either way, so the accuracy is
    the same. Scalars stay on the device: ‖r‖ is read on the host every ``check_every`` iterations
    (default ``problems.lower.default_check_every``: 1 on the CPU), so a solve may run up to
    check_every − 1 steps past the first passing one (each a real, counted matvec).

    tol is clipped to the dtype's floor FLOOR_FACTOR·eps_machine·‖rhs‖ (below it the recursive
    residual only tracks rounding); a stall rule (no 0.1 % progress in STALL_ITERS steps) acts only
    within STALL_MARGIN of that floor. Returns (q, residual norm at the last check).
    """
    check_every = default_check_every(rhs.device) if check_every is None else int(check_every)
    if check_every < 1:
        raise ValueError(f"check_every must be ≥ 1, got {check_every}")
    if x0 is None:
        x = torch.zeros_like(rhs)
        r = rhs.clone()
    else:
        x = x0.clone()
        r = rhs - matvec(x)
    r_norm, rhs_norm = torch.stack((torch.linalg.vector_norm(r), torch.linalg.vector_norm(rhs))).tolist()
    floor = FLOOR_FACTOR * torch.finfo(rhs.dtype).eps * rhs_norm
    target = max(tol, floor)
    if r_norm <= target:
        return x, r_norm
    z = r if precond is None else precond(r)
    rz = torch.vdot(r.flatten(), z.flatten())
    p = z.clone()
    ok = torch.ones((), dtype=torch.bool, device=rhs.device)
    best, best_k = r_norm, 0
    for k in range(1, max_iters + 1):
        hp = matvec(p)
        php = torch.vdot(p.flatten(), hp.flatten())
        # H not positive definite on p, p = 0, or NaN: a zero step keeps x, and the check stops
        good = php > 0.0
        a = torch.where(good, rz / php, torch.zeros_like(php))
        ok = ok & good
        x.addcmul_(p, a)
        r.addcmul_(hp, a, value=-1.0)
        if k % check_every == 0 or k == max_iters:
            r_norm, still_ok = torch.stack((torch.linalg.vector_norm(r), ok.to(r.dtype))).tolist()
            if not still_ok or r_norm <= target:
                break
            if r_norm < best * (1.0 - 1e-3):
                best, best_k = r_norm, k
            elif r_norm <= STALL_MARGIN * floor and k - best_k >= STALL_ITERS:
                break  # at the dtype's resolution, no progress left
        z = r if precond is None else precond(r)
        rz_new = torch.vdot(r.flatten(), z.flatten())
        p.mul_(rz_new / rz).add_(z)
        rz = rz_new
    return x, r_norm
