"""adpbench harness: ``bench.run`` runs one solver on one problem and returns its trace."""

from bench.harness import RunResult, make_solver_for, run

__all__ = ["RunResult", "make_solver_for", "run"]
__version__ = "0.1.0"
