"""Studies built on the library: timing scripts, grid searches, profiling, the asv suite and the CI
work-count gate. They import ``bench``, ``solvers`` and ``problems``; nothing there imports them."""
