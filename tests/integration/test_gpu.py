"""CUDA end to end (skipped cleanly without a GPU, as on CI): every solver on a 1D and a 2D problem,
float32 and float64, tensors on the device, and the same work counts as on the CPU in float64."""

from __future__ import annotations

import pytest
import torch

import bench

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CASES = [("deconv1d", {}), ("deblur2d", {"size": (32, 32), "preset": "certified"})]


@pytest.mark.parametrize("solver", ["maid", "ift", "lista"])
@pytest.mark.parametrize(("problem", "params"), CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_runs_on_cuda(problem, params, solver, dtype):
    res = bench.run(solver, problem, problem_params=params, max_iters=3, device="cuda", dtype=dtype)
    assert res.theta.is_cuda and res.x.is_cuda
    assert res.status in ("budget", "converged")
    assert torch.isfinite(torch.as_tensor(res.trace.upper_value.to_numpy())).all()
    assert (res.trace.device == "cuda").all() and (res.trace.dtype == dtype).all()
    if dtype == "float64":
        cpu = bench.run(solver, problem, problem_params=params, max_iters=3, device="cpu", dtype=dtype)
        assert cpu.trace.upper_value.iloc[-1] == pytest.approx(res.trace.upper_value.iloc[-1], rel=1e-8)
