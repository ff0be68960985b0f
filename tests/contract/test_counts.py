"""Counts equal the real calls (jaxopt style): wrap the kernels that do the work and
compare their call counts with the problem's counters, for every solver × problem.

What is wrapped (the real work, not the counting oracles):

* a lower-level step: ``_ll_grad`` called by a solver or an unrolling (not from inside the autograd
  defaults ``_hvp`` / ``_ul_grad_x`` / ``_hypergradient_from``, where it is a building block), or one step of
  a closed-form unrolling (deconv1d's ``_UnrolledISTA``);
* a CG step: ``_hvp``; an upper evaluation: ``ul_g`` outside those building blocks; a ∇_x g:
  ``_ul_grad_x``; a hypergradient assembly: ``_hypergradient_from``;
* a backward step: deconv1d's ``_UnrolledISTA.backward`` (its K steps), or the gradient reaching the
  output of an autograd unrolling (then its K steps);
* a set-up: ``normal_matrix`` (deconv1d's BᵀB + a₂I) or a ``Conv2D`` built by a 2D problem outside its
  Lipschitz bound (kernel FFT, then K_bᵀy);
* a Lipschitz bound: ``Conv2D.norm_bound_from`` (power iterations) or ``torch.linalg.matrix_norm`` (a spectral
  norm, tikhonov_adp).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import bench
import problems
import problems.deblur2d
import problems.deconv1d
import solvers
from problems.conv2d import Conv2D

ALL_SOLVERS = sorted(solvers.list_solvers())
ALL_PROBLEMS = sorted(problems.list_problems())


class _Real:
    """Call counts of the wrapped kernels (see the module docstring)."""

    def __init__(self, problem, monkeypatch):
        self.counts = dict.fromkeys(problem.counters.snapshot(), 0)
        self._inside = 0  # depth inside autograd building blocks / Lipschitz bounds
        self._unrolling = False
        self._jvp = False  # inside J·v (tangent warm start)
        p = problem

        @contextlib.contextmanager
        def inside():
            self._inside += 1
            try:
                yield
            finally:
                self._inside -= 1

        def wrap_block(name, key=None):
            orig = getattr(p, name)

            def fn(*args):
                if key is not None and not self._inside:
                    self.counts[key] += 1
                with inside():
                    return orig(*args)

            monkeypatch.setattr(p, name, fn)

        orig_grad, orig_hvp, orig_g, orig_unrolled = p._ll_grad, p._hvp, p.ul_g, p.ll_unrolled

        def ll_grad(theta, x):
            if not self._inside and not self._unrolling:
                self.counts["ll_iters"] += 1
            elif self._unrolling and not self._inside:
                self.inner += 1
            return orig_grad(theta, x)

        def hvp(theta, x, v):
            self.counts["cg_iters"] += 1
            with inside():
                return orig_hvp(theta, x, v)

        def ul_g(theta, x):
            if not self._inside:
                self.counts["ul_evals"] += 1
            return orig_g(theta, x)

        def ll_unrolled(theta, x, n_steps, step, **kwargs):
            self.inner = 0
            self._unrolling = True
            try:
                out = orig_unrolled(theta, x, n_steps, step, **kwargs)
            finally:
                self._unrolling = False
            self.counts["ll_iters"] += n_steps
            assert self.inner in (0, n_steps)  # all K steps through _ll_grad, or all in a closed form
            if self.inner and out.requires_grad:  # autograd unrolling: its K steps when the gradient arrives

                def backward_reached(grad):
                    self.counts["ll_backward_iters"] += n_steps

                out.register_hook(backward_reached)
            return out

        monkeypatch.setattr(p, "_ll_grad", ll_grad)
        monkeypatch.setattr(p, "_hvp", hvp)
        monkeypatch.setattr(p, "ul_g", ul_g)
        monkeypatch.setattr(p, "ll_unrolled", ll_unrolled)
        for name, key in (("_ul_grad_x", "ul_grad_evals"), ("_hypergradient_from", "hypergrad_evals")):
            wrap_block(name, key)
        # J·v of the tangent warm start (MAID): a building block (its autograd default's ∇f is not a
        # lower step), but a closed form's kernel FFT of the direction v is a set-up
        orig_jvp = p._ll_grad_jvp_theta

        def jvp(theta, x, v):
            self._jvp = True
            try:
                with inside():
                    return orig_jvp(theta, x, v)
            finally:
                self._jvp = False

        monkeypatch.setattr(p, "_ll_grad_jvp_theta", jvp)
        if hasattr(p, "kernel_norm_sq_bound"):
            wrap_block("kernel_norm_sq_bound")

        # closed-form unrolling (deconv1d): its backward goes through all K steps at once
        orig_backward = problems.deconv1d._UnrolledISTA.backward

        def backward(ctx, grad_out):
            self.counts["ll_backward_iters"] += ctx.saved_tensors[1].shape[0]
            return orig_backward(ctx, grad_out)

        monkeypatch.setattr(problems.deconv1d._UnrolledISTA, "backward", staticmethod(backward))

        orig_normal = problems.deconv1d.normal_matrix

        def normal_matrix(theta, a2):
            self.counts["setup_evals"] += 1
            return orig_normal(theta, a2)

        monkeypatch.setattr(problems.deconv1d, "normal_matrix", normal_matrix)

        def conv2d(*args, **kwargs):
            if not self._inside or (self._jvp and self._inside == 1):
                self.counts["setup_evals"] += 1
            return Conv2D(*args, **kwargs)

        monkeypatch.setattr(problems.deblur2d, "Conv2D", conv2d)

        orig_norm_bound = Conv2D.norm_bound_from  # norm_bound calls it too

        def norm_bound_from(op, *args):
            self.counts["lipschitz_evals"] += 1
            return orig_norm_bound(op, *args)

        monkeypatch.setattr(Conv2D, "norm_bound_from", norm_bound_from)
        orig_matrix_norm = torch.linalg.matrix_norm

        def matrix_norm(*args, **kwargs):
            self.counts["lipschitz_evals"] += 1
            return orig_matrix_norm(*args, **kwargs)

        monkeypatch.setattr(torch.linalg, "matrix_norm", matrix_norm)


@pytest.mark.parametrize("problem_name", ALL_PROBLEMS)
@pytest.mark.parametrize("solver_name", ALL_SOLVERS)
def test_counters_equal_real_calls(solver_name, problem_name, small_problem, monkeypatch):
    p = small_problem(problem_name)
    real = _Real(p, monkeypatch)
    config = {"n_unroll": 5} if solver_name == "lista" else {}
    # the harness's exact evaluation calls the same maths, uncounted: off here, so every call is the solver's
    # (tests/contract/test_evaluation.py: the counts are the same with it on)
    result = bench.run(solver_name, p, max_iters=3, solver_config=config, exact=False)
    last = result.trace.iloc[-1]
    counted = {key: int(last[key]) for key in real.counts}
    assert counted == real.counts
    assert counted["ll_iters"] > 0 and counted["ul_evals"] > 0
    if solver_name == "lista":  # 3 backward passes (one per update) through K = 5 steps each
        assert counted["ll_backward_iters"] == 15 and counted["cg_iters"] == 0
        assert counted["ul_grad_evals"] == 0 and counted["hypergrad_evals"] == 0
    elif solver_name in ("maid", "ift"):  # implicit differentiation: CG, no unrolling
        assert counted["ll_backward_iters"] == 0 and counted["cg_iters"] > 0
        assert counted["ul_grad_evals"] > 0 and counted["hypergrad_evals"] > 0
    if problem_name in ("deconv1d", "deblur2d", "semiblind2d", "tikhonov_conv2d"):
        assert counted["setup_evals"] > 0  # every θ tried pays its set-up
    # every new counter is in every trace row
    assert set(p.counters.snapshot()) <= set(result.trace.columns)
