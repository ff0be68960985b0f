"""``time_*``: one call of each hypergradient kernel on deconv1d (and deblur2d 64×64, 128×128 when
registered), CPU and, when available, CUDA. What each kernel does: ``studies.microbench``."""

from studies import microbench as mb


class TimeKernels:
    params = (mb.case_names(), mb.devices())
    param_names = ("case", "device")
    # seconds per call: ~10 µs (1D Hessian-vector product) to ~0.1 s (2D CG solve)
    min_run_count = 2

    def setup(self, case, device):
        # Cached per process: the first setup builds the problem, solves MAID's initial lower problem
        # and runs every kernel once (warm-up, CUDA synchronised); later setups only look it up.
        self.prep = mb.prepare(case, device)
        # Batch cheap 1D calls (asv re-runs this setup between the calls and times only the calls).
        self.number = 20 if case == "deconv1d" else 1

    def time_ll_iteration(self, case, device):
        mb.ll_iteration(self.prep)

    def time_hvp(self, case, device):
        mb.hvp(self.prep)

    def time_cg_solve(self, case, device):
        mb.cg_solve(self.prep)

    def time_hypergradient(self, case, device):
        mb.hypergradient(self.prep)

    def time_inexact_hypergradient(self, case, device):
        mb.inexact_hypergradient(self.prep)


def track_torch_threads():
    """torch's intra-op thread count in the benchmark processes (``OMP_NUM_THREADS`` sets it)."""
    import torch

    return torch.get_num_threads()


track_torch_threads.unit = "threads"
