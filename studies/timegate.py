"""CI time gate: is the code under test slower than a pinned baseline commit, on the same machine, now?

Absolute times on a shared 2-core machine say little; a ratio measured in one run does. The baseline commit
(first line of ``.ci/timegate_baseline``) is unpacked with ``git archive`` into a temporary folder. Each
repetition starts two fresh subprocesses, one per tree — the code under test (this working tree,
uncommitted changes included) and the baseline — with ``OMP_NUM_THREADS=1``, one torch thread and
``PYTHONPATH`` set to that tree (each checks which tree it imported). The parent then asks them for one
sample at a time, alternating A B, B A, A B, ...: the two sides of a pair run milliseconds apart, under the
same load. A sample is the process's CPU seconds for the kernel (set-up untimed), which other processes
on the machine disturb far less than the wall clock. Kernels:

* ``deconv1d_maid`` — a harness run of MAID on deconv1d (defaults) to the problem's report target;
* ``ll_grad_2d`` — lower-level gradients ∇ₓf at θ₀ on a 128×128 deblur2d (``ORACLE_CALLS`` per sample);
* ``hvp_2d`` — Hessian-vector products there;
* ``maid_upper_2d`` — one MAID upper iteration from the state after ``init`` on a 32×32 deblur2d.

A measurement is the median of a kernel's inner samples in one repetition; its ratio r = test ÷ baseline;
the gate is the median of r over the repetitions, per kernel, and fails (exit 1) when any exceeds
``--threshold`` (1.3). Usage: ``python studies/timegate.py`` (one to three minutes, by the machine's load);
moving the baseline deliberately: ``docs/reports.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_FILE = ROOT / ".ci" / "timegate_baseline"
#: a median ratio above this fails the gate: far above what identical code shows on a loaded machine
#: (medians within ~±10 %), well below the 2× slowdown of a doubled lower iteration it must catch
THRESHOLD = 1.3
#: repetitions (subprocess pairs): 7 keep one disturbed pair from moving the median
REPETITIONS = 7
#: samples per kernel and side in one repetition: many of the short oracles, a few of the whole runs
INNER = {"deconv1d_maid": 6, "ll_grad_2d": 30, "hvp_2d": 30, "maid_upper_2d": 8}
#: oracle calls per sample (~2 ms each at 128×128): a sample of ~10 ms, far above the clock's grain
ORACLE_CALLS = 5
SIZE_ORACLES = 128  # the 2D oracles' image side: the paper's smallest realistic size
SIZE_UPPER = 32  # the 2D upper iteration's image side: an iteration of ~0.1 s
MAX_SECONDS_1D = 60.0  # deconv1d's safety budget (it reaches its target in well under a second)


# ------------------------------------------------------------------------------------- the kernels
# Each kernel prepares (untimed) and returns a function that takes one sample: CPU seconds of the work.
def _cpu(fn: Callable[[], object]) -> float:
    """CPU seconds of this process for one call (one thread: the work itself)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def deconv1d_maid() -> Callable[[], float]:
    """A whole harness run of MAID on deconv1d up to the upper iteration k where its own upper value first
    reaches the report target (k from an untimed first run), metrics only at 0 and k, without the
    harness's exact evaluation (which is off the solver's clock, and would dominate a CPU-time sample)."""
    import problems
    from bench.harness import run

    target = problems.problem_class("deconv1d").report_target
    trace = run("maid", "deconv1d", max_time=MAX_SECONDS_1D, threads=1, exact=False).trace
    hit = trace[trace.upper_value <= target]
    if hit.empty:
        raise RuntimeError(f"deconv1d: MAID did not reach {target} within {MAX_SECONDS_1D} s")
    k = int(hit.iteration.iloc[0])
    return lambda: _cpu(lambda: run("maid", "deconv1d", max_iters=k, eval_every=k, threads=1, exact=False))


def _oracle(call: Callable) -> Callable[[], float]:
    import torch

    import problems

    problem = problems.make_problem("deblur2d", size=(SIZE_ORACLES, SIZE_ORACLES))
    theta, x = problem.theta0, problem.x0
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)

    def calls() -> None:
        with torch.no_grad():
            for _ in range(ORACLE_CALLS):
                call(problem, theta, x, v)

    calls()  # warm-up: FFT plans, the per-θ set-up, the allocator
    return lambda: _cpu(calls)


def ll_grad_2d() -> Callable[[], float]:
    return _oracle(lambda p, theta, x, _v: p.ll_grad(theta, x))


def hvp_2d() -> Callable[[], float]:
    return _oracle(lambda p, theta, x, v: p.hvp(theta, x, v))


def maid_upper_2d() -> Callable[[], float]:
    """One MAID ``update`` from the state after ``init`` (MAID's states are immutable: every sample does
    the same work; a first, untimed update warms the per-θ set-ups up)."""
    import problems
    from bench.harness import make_solver_for

    problem = problems.make_problem("deblur2d", size=(SIZE_UPPER, SIZE_UPPER))
    solver = make_solver_for("maid", problem)
    state = solver.init(problem)
    solver.update(problem, state)
    return lambda: _cpu(lambda: solver.update(problem, state))


KERNELS: dict[str, Callable[[], Callable[[], float]]] = {
    "deconv1d_maid": deconv1d_maid,
    "ll_grad_2d": ll_grad_2d,
    "hvp_2d": hvp_2d,
    "maid_upper_2d": maid_upper_2d,
}


def serve() -> None:
    """In a subprocess: say which tree it imported, then answer each kernel name read from stdin with one
    sample (JSON lines; the first request of a kernel prepares it, untimed)."""
    import torch

    torch.set_num_threads(1)
    import problems

    print(json.dumps({"tree": str(Path(problems.__file__).resolve().parent.parent)}), flush=True)
    prepared: dict[str, Callable[[], float]] = {}
    for line in sys.stdin:
        name = line.strip()
        try:
            if name not in prepared:
                prepared[name] = KERNELS[name]()
            print(json.dumps({"seconds": prepared[name]()}), flush=True)
        except Exception as exc:  # reported to the parent, which stops with it
            print(json.dumps({"error": f"{name}: {type(exc).__name__}: {exc}"}), flush=True)


class Server:
    """One tree's timing subprocess (:func:`serve`)."""

    def __init__(self, tree: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        self.tree = tree
        self.proc = subprocess.Popen(
            command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        imported = Path(self._reply()["tree"]).resolve()
        if imported != tree.resolve():
            raise RuntimeError(f"the timing subprocess for {tree} imported {imported}")

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the timing subprocess for {self.tree} died (exit {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"timing with {self.tree} failed: {reply['error']}")
        return reply

    def sample(self, kernel: str) -> float:
        self.proc.stdin.write(kernel + "\n")
        self.proc.stdin.flush()
        return float(self._reply()["seconds"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.wait()


# ------------------------------------------------------------------------------------- the decision
def ratios(test: list[list[float]], base: list[list[float]]) -> list[float]:
    """Per repetition: median of the test's inner samples ÷ median of the baseline's."""
    return [statistics.median(t) / statistics.median(b) for t, b in zip(test, base, strict=True)]


def decide(per_kernel: dict[str, list[float]], threshold: float = THRESHOLD) -> tuple[bool, list[str]]:
    """Pass when every kernel's ratios are finite and positive and their median over the repetitions is
    ≤ threshold; one line per kernel saying its median ratio, the repetitions' ratios and the verdict."""
    ok, lines = True, []
    for name, values in per_kernel.items():
        finite = bool(values) and all(math.isfinite(v) and v > 0 for v in values)  # else a broken sample
        median = statistics.median(values) if finite else math.nan
        good = finite and median <= threshold
        ok &= good
        each = " ".join(f"{v:.2f}" for v in values)
        verdict = "ok" if good else f"SLOWER than the baseline (> {threshold:g})"
        lines.append(f"timegate: {name:<14} median ratio {median:.3f}  [{each}]  {verdict}")
    return ok, lines


# ------------------------------------------------------------------------------------- the driver
def read_baseline(path: Path = BASELINE_FILE) -> str:
    """The commit on the file's first line that is not a comment (``#``)."""
    if not path.is_file():
        raise ValueError(f"{path} is missing: its first line must name the baseline commit")
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.split()[0]
    raise ValueError(f"{path} names no commit (first non-comment line: a commit hash)")


@contextlib.contextmanager
def baseline_tree(commit: str, repo: Path = ROOT) -> Iterator[Path]:
    """The baseline's files, unpacked with ``git archive`` into a temporary folder (removed after)."""
    known = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
    )
    if known.returncode != 0:
        raise ValueError(
            f"baseline commit {commit} ({BASELINE_FILE.name}) is not in this clone's history: fetch the full "
            "history (git fetch --unshallow) or move the baseline (docs/reports.md)"
        )
    tar = subprocess.run(["git", "-C", str(repo), "archive", commit], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="timegate-") as folder:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # no links out of the folder
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(folder, **safe)
        yield Path(folder)


def repetition(trees: dict[str, Path], kernels: list[str], first: str) -> dict[str, dict[str, list[float]]]:
    """One repetition: fresh subprocesses for both trees, samples alternating between them (``first``
    begins). Returns side → kernel → samples."""
    servers = {side: Server(tree) for side, tree in trees.items()}
    sides = [first, *(s for s in trees if s != first)]
    out: dict[str, dict[str, list[float]]] = {side: {k: [] for k in kernels} for side in trees}
    try:
        for kernel in kernels:
            for i in range(INNER[kernel]):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    out[side][kernel].append(servers[side].sample(kernel))
    finally:
        for server in servers.values():
            server.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repetitions", type=int, default=REPETITIONS)
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--kernels", default=",".join(KERNELS), help=f"comma-separated, of {', '.join(KERNELS)}")
    ap.add_argument("--baseline", help=f"a commit (default: {BASELINE_FILE.relative_to(ROOT)})")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve()
        return 0
    kernels = [k for k in args.kernels.split(",") if k]
    unknown = sorted(set(kernels) - set(KERNELS))
    if unknown or args.repetitions < 1:
        print(
            f"timegate: error: kernels must be among {', '.join(KERNELS)}; repetitions ≥ 1", file=sys.stderr
        )
        return 2
    start = time.perf_counter()
    try:
        commit = args.baseline or read_baseline()
        samples: dict[str, list] = {"test": [], "baseline": []}
        with baseline_tree(commit) as base:
            trees = {"test": ROOT, "baseline": base}
            for rep in range(args.repetitions):
                done = repetition(trees, kernels, first="test" if rep % 2 == 0 else "baseline")
                for side in trees:
                    samples[side].append(done[side])
    except (ValueError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"timegate: error: {exc}", file=sys.stderr)
        return 2
    per_kernel = {
        k: ratios([s[k] for s in samples["test"]], [s[k] for s in samples["baseline"]]) for k in kernels
    }
    ok, lines = decide(per_kernel, args.threshold)
    print(
        f"timegate: test {ROOT} vs baseline {commit}, {args.repetitions} repetitions, ratio = test ÷ baseline"
    )
    for k in kernels:
        t = statistics.median(statistics.median(s[k]) for s in samples["test"])
        b = statistics.median(statistics.median(s[k]) for s in samples["baseline"])
        print(f"timegate: {k:<14} test {1e3 * t:9.2f} ms, baseline {1e3 * b:9.2f} ms (medians)")
    print("\n".join(lines))
    print(f"timegate: {'passed' if ok else 'FAILED'} in {time.perf_counter() - start:.0f} s")
    slower = sum("SLOWER" in line for line in lines)
    print(f"timegate: {len(lines) - slower} passed, {slower} failed")  # a closing line CI logs can read
    return 0 if ok else 1


if __name__ == "__main__":
    if "--serve" in sys.argv:  # import the tree on PYTHONPATH, never this script's folder's neighbours
        sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.exit(main())
