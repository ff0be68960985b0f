"""Image-problem reports (paper fig. 4–7) for problems that show an image (``problems.IMAGE``): blurry /
smoothed TV / ADP-β per solver with PSNR/SSIM, learned kernels (``problems.KERNEL``), and a quality table.
Baselines are computed here (untimed) and cached per instance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import problems as problem_registry
from bench import results, verdicts


def _protocol_label(name: object) -> object:
    """A protocol's name with the inconsistencies it keeps labelled; other values unchanged."""
    import protocols

    return protocols.get(name).label if isinstance(name, str) else name


def _instance_key(problem: str, params_json: str) -> str:
    return hashlib.sha1(f"{problem}:{params_json}".encode()).hexdigest()[:12]


#: instance parameters a suite varies, named in figure files when they are off the problem's default
TAGGED_PARAMS = ("noise", "blur", "kernel_size")


def figure_tag(problem: str, params: dict) -> str:
    """A file-name stem per instance: problem, image (a file's stem), preset, seed, and the suite axes
    (``TAGGED_PARAMS``) that differ from their default, so instances in one folder never share a file."""
    defaults = problem_registry.problem_parameters(problem)
    image = Path(str(params.get("image"))).stem
    tag = f"{problem}_{image}_{params.get('preset')}_seed{params.get('seed')}"
    for key in TAGGED_PARAMS:
        if key in params and params[key] != defaults.get(key):
            value = f"{params[key]:.4g}" if isinstance(params[key], float) else str(params[key])
            tag += f"_{key}{value}"
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in tag)


def _make(problem: str, params_json: str):
    params = json.loads(params_json)
    params["device"] = "cpu"
    params["dtype"] = "float64"
    if "size" in params:
        params["size"] = tuple(params["size"])
    return problem_registry.make_problem(problem, **params)


def baseline(out_dir: Path, problem: str, params_json: str):
    """(problem instance, TV reference reconstruction), the latter cached in out_dir/baselines/ as a plain
    array (.npz read with allow_pickle=False: a shared folder cannot run code); a damaged cache is rebuilt."""
    prob = _make(problem, params_json)
    path = out_dir / "baselines" / f"{problem}__{_instance_key(problem, params_json)}.npz"
    x_tv = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                x_tv = torch.from_numpy(data["x_tv"].copy())
        except (OSError, ValueError, KeyError, EOFError):
            x_tv = None
        if x_tv is not None and tuple(x_tv.shape) != tuple(prob.x0.shape):
            x_tv = None
    if x_tv is None:
        x_tv = prob.tv_reference().cpu()
        arr = x_tv.numpy()

        def save(p: str) -> None:
            with open(p, "wb") as fh:
                np.savez(fh, x_tv=arr)

        results._atomic_write(path, save)
    return prob, x_tv


def quality_table(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """One row per (problem, instance, solver-free reference or solver): PSNR/SSIM of blurry, TV, ADP."""
    rows = []
    first = traces.sort_values("iteration").groupby("run_id").first()
    for (problem, params_json), group in first.groupby(["problem", "problem_params"], sort=False):
        prob, x_tv = baseline(out_dir, problem, params_json)
        params = json.loads(params_json)
        ident = dict(
            problem=problem,
            instance=verdicts.instance_of(problem, params_json),  # what the targets table calls it
            image=params.get("image"),
            noise=params.get("noise"),
            blur=params.get("blur"),
            preset=_protocol_label(params.get("preset")),
            seed=params.get("seed"),
            size="×".join(map(str, params.get("size", []))),
        )
        rows.append({**ident, "method": "blurry", **prob.blurry_metrics()})
        rows.append({**ident, "method": prob.tv_baseline_label, **prob.metrics(prob.theta0, x_tv)})
        for run_id in group.index:
            run = runs[runs.run_id == run_id].iloc[0]
            arrays = results.load_arrays(out_dir, run_id)
            if arrays is None:
                continue
            m = prob.metrics(arrays["theta"].to(prob.dtype), arrays["x"].to(prob.dtype))
            rows.append(
                {
                    **ident,
                    "method": f"ADP-β {run.solver}",
                    **m,
                    "status": run.status,
                    "upper_iters": run.upper_iters,
                    "wall_time": run.wall_time,
                    "kernel_change": float(torch.linalg.vector_norm(arrays["theta"] - prob.theta0.cpu())),
                }
            )
    return pd.DataFrame(rows)


def _to_img(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def figures(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> list[str]:
    from bench.plots import _mpl

    plt, _ = _mpl()
    names = []
    first = traces.sort_values("iteration").groupby("run_id").first()
    for (problem, params_json), group in first.groupby(["problem", "problem_params"], sort=False):
        params = json.loads(params_json)
        prob, x_tv = baseline(out_dir, problem, params_json)
        tag = figure_tag(problem, params)
        panels = [
            ("truth", prob.x_true.cpu(), None),
            ("blurry", prob.y.cpu(), prob.blurry_metrics()),
            (prob.tv_baseline_label, x_tv, prob.metrics(prob.theta0, x_tv)),
        ]
        kernels = [("b₀ = b_A", prob.theta0.cpu())]
        for run_id, row in group.iterrows():
            arrays = results.load_arrays(out_dir, run_id)
            if arrays is None:
                continue
            m = prob.metrics(arrays["theta"].to(prob.dtype), arrays["x"].to(prob.dtype))
            panels.append((f"ADP-β {row.solver}", arrays["x"], m))
            kernels.append((f"{row.solver}: b", arrays["theta"]))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2))
        for ax, (title, img, m) in zip(axes, panels, strict=True):
            ax.imshow(_to_img(img))
            ax.set_title(
                title + ("\n" if m is None else f"\n{m['psnr']:.2f} dB / {m['ssim']:.3f}"), fontsize=8
            )
            ax.axis("off")
        label = _protocol_label(params.get("preset"))
        fig.suptitle(f"{problem}, {params.get('image')}, {label} (PSNR dB / SSIM)", fontsize=8)
        # leave the suptitle its own band so it cannot sit on the panel titles
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        names.append(f"{tag}_images.png")
        fig.savefig(out_dir / names[-1], dpi=80)  # small enough to commit, large enough to judge
        plt.close(fig)
        if problem_registry.KERNEL not in problem_registry.figures(problem):
            continue
        # kernels (channel 0; all channels start equal) and |b − b_A|
        ref = prob.theta0.cpu()[0].numpy()
        fig, axes = plt.subplots(2, len(kernels), figsize=(2.2 * len(kernels), 4.2), squeeze=False)
        vmax = max(float(k[0].abs().max()) for _, k in kernels)
        dmax = max([float((k[0] - prob.theta0.cpu()[0]).abs().max()) for _, k in kernels] + [1e-12])
        for j, (title, k) in enumerate(kernels):
            axes[0, j].imshow(k[0].numpy(), cmap="viridis", vmin=0, vmax=vmax)
            axes[0, j].set_title(title, fontsize=8)
            im = axes[1, j].imshow(np.abs(k[0].numpy() - ref), cmap="magma", vmin=0, vmax=dmax)
            axes[1, j].set_title("|b − b_A|", fontsize=8)
            for ax in axes[:, j]:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.colorbar(im, ax=axes[1].tolist(), shrink=0.8)
        label = _protocol_label(params.get("preset"))
        fig.suptitle(f"{problem}, {params.get('image')}, {label} (channel R)", fontsize=8)
        names.append(f"{tag}_kernels.png")
        fig.savefig(out_dir / names[-1], dpi=110)
        plt.close(fig)
    return names
