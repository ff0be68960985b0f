"""One full upper iteration of each solver: time (``time_*``), host peak memory (``peakmem_*``) and the
bytes autograd keeps for backward (``track_*``: LISTA's unrolled graph against IFT's and MAID's none)."""

import torch

from studies import microbench as mb


class TimeUpperIteration:
    params = (mb.case_names(), list(mb.SOLVER_NAMES), mb.devices())
    param_names = ("case", "solver", "device")
    number = 1  # LISTA's update consumes its state's graph: one call per fresh state
    min_run_count = 2

    def setup(self, case, solver, device):
        # MAID, IFT: the fixed state after init (update does not mutate it); LISTA: a fresh init state.
        self.prep = mb.prepare_solver(case, solver, device)
        self.state = self.prep.fresh_state()

    def time_upper_iteration(self, case, solver, device):
        mb.upper_iteration(self.prep, self.state)


class MemoryUpperIteration:
    params = (mb.case_names(), list(mb.SOLVER_NAMES))
    param_names = ("case", "solver")

    def setup(self, case, solver):
        self.prep = mb.prepare_solver(case, solver, "cpu")
        self.state = self.prep.fresh_state()

    def peakmem_upper_iteration(self, case, solver):
        # Peak RSS of the whole process (torch itself is a few hundred MB): compare solvers, not absolutes.
        mb.upper_iteration(self.prep, self.state)

    def track_autograd_saved_bytes(self, case, solver):
        return mb.autograd_saved_bytes(lambda: mb.upper_iteration(self.prep, self.state))

    track_autograd_saved_bytes.unit = "bytes"


if torch.cuda.is_available():

    class CudaMemoryUpperIteration:
        params = (mb.case_names(), list(mb.SOLVER_NAMES))
        param_names = ("case", "solver")

        def setup(self, case, solver):
            self.prep = mb.prepare_solver(case, solver, "cuda")
            self.state = self.prep.fresh_state()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

        def track_cuda_peak_bytes(self, case, solver):
            """Peak CUDA memory allocated during one upper iteration (state and problem included)."""
            mb.upper_iteration(self.prep, self.state)
            return torch.cuda.max_memory_allocated()

        track_cuda_peak_bytes.unit = "bytes"
