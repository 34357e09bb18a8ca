"""Pictures of results (matplotlib, drawn off-screen to PNG): study bars and gradient norms.

Each function takes plain data (no training objects) and writes one PNG atomically, so a half-written
picture never replaces a good one.
"""

from __future__ import annotations

from pathlib import Path

from data_builders.common import atomic_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    path = Path(path)
    with atomic_file(path, path.with_name(f".{path.stem}.tmp.png")) as temporary:  # the suffix picks the format
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
    return path


def plot_study(title: str, rows: list[dict], path: Path, metric: str = "BLEU-4") -> Path:
    """One bar per row: the mean over seeds with a +- std error bar, each seed as a dot, the paper's number as a
    hollow bar beside it. `rows`: [{"label", "values": [per-seed scores], "paper": float | None}]."""
    import statistics

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.9 * len(rows) + 2.0, 4.0))
    width = 0.38
    for index, row in enumerate(rows):
        values = row["values"]
        if values:
            mean = statistics.mean(values)
            axis.bar(
                index - width / 2,
                mean,
                width,
                yerr=statistics.pstdev(values),
                capsize=4,
                color="tab:blue",
                label="here (mean +- std over seeds)" if index == 0 else None,
            )
            axis.scatter(
                [index - width / 2] * len(values),
                values,
                color="black",
                s=10,
                zorder=3,
                label="one seed" if index == 0 else None,
            )
        if row.get("paper") is not None:
            axis.bar(
                index + width / 2,
                row["paper"],
                width,
                fill=False,
                edgecolor="tab:orange",
                hatch="//",
                label="paper (PHOENIX-2014T)" if index == 0 else None,
            )
    axis.set_xticks(range(len(rows)), [row["label"].replace(" (", "\n(") for row in rows], fontsize=8)
    axis.set_ylabel(f"test {metric}")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)  # clear of the bars
    axis.grid(axis="y", alpha=0.3)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def plot_gradient_norms(panels: list[dict], path: Path) -> Path:
    """Per-module gradient norms over optimizer steps, one panel per run (log scale).

    `panels`: [{"title", "records": [{"step": int, MODULE: norm, ...}, ...]}] as in a run's grad_norms.jsonl.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False, sharey=True)
    modules = [
        key for key in dict.fromkeys(k for panel in panels for r in panel["records"] for k in r) if key != "step"
    ]
    colors = {module: f"C{index % 10}" for index, module in enumerate(modules)}  # one colour per module in every panel
    for axis, panel in zip(axes[0], panels):
        records = panel["records"]
        for module in modules:
            points = [(r["step"], r[module]) for r in records if r.get(module)]
            if points:
                axis.plot(*zip(*points), label=module, color=colors[module], marker=".", markersize=3, linewidth=1)
        axis.set_yscale("log")
        axis.set_xlabel("optimizer step")
        axis.set_title(panel["title"], fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("gradient L2 norm (before clipping)")
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def plot_training_curves(train_records: list[dict], history: list[dict], metric: str, path: Path) -> Path:
    """Training loss, learning rate and the dev metric over optimizer steps (a run's curves.png).

    `train_records`: [{"step", "loss", "lr"}] (train_log.jsonl); `history`: the dev evaluations ({"step", metric, ...}).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    steps = [r["step"] for r in train_records]
    axes[0].plot(steps, [r["loss"] for r in train_records], linewidth=1)
    axes[0].set_title("training loss", fontsize=10)
    axes[1].plot(steps, [r["lr"] for r in train_records], linewidth=1, color="tab:orange")
    axes[1].set_title("learning rate (last parameter group)", fontsize=10)
    points = [(r["step"], r[metric]) for r in history if metric in r]
    if points:
        axes[2].plot(*zip(*points), marker="o", color="tab:green")
    axes[2].set_title(f"dev {metric}", fontsize=10)
    for axis in axes:
        axis.set_xlabel("optimizer step")
        axis.grid(alpha=0.3)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def plot_signs(glosses, path: Path, size: int = 96, frames_per_sign: int = 6, signer: int = 0) -> Path:
    """A few signs of the synthetic sign language: one row per sign, frames from the middle of its timeline, with
    `describe_sign`'s words (docs/data.md shows this picture)."""
    import numpy as np

    from data_builders.synthetic import _signer_pool, describe_sign, make_spec, render_spec

    plt = _pyplot()
    figure, axes = plt.subplots(len(glosses), 1, figsize=(frames_per_sign * 1.3, 1.55 * len(glosses)), squeeze=False)
    person = _signer_pool(signer + 1, seed=0)[signer]
    for axis, gloss in zip(axes[:, 0], glosses):
        spec = make_spec([gloss], person, np.random.default_rng(0), (size, size), fps=25.0, noise=0.0)
        start, end = spec["signs"][0][:2]
        picks = np.linspace(start * 25, end * 25, frames_per_sign).round().astype(int).clip(0, spec["num_frames"] - 1)
        axis.imshow(np.concatenate(list(render_spec(spec, picks)), axis=1))
        axis.set_title(describe_sign(gloss), fontsize=8, loc="left")
        axis.axis("off")
    figure.tight_layout()
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


if __name__ == "__main__":  # python -m train.plots signs docs/images/signs.png  (the picture in docs/data.md)
    import sys

    if sys.argv[1:2] != ["signs"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m train.plots signs OUT.png")
    from data_builders.synthetic import SIGN_CODES

    picked = [g for g in ("BUY", "SELL", "MAN", "WOMAN", "GO", "COME") if g in SIGN_CODES] or sorted(SIGN_CODES)[:6]
    print(plot_signs(picked, Path(sys.argv[2])))
