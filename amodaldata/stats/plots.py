"""PNG plots of a stats result: the histograms of Zhu et al. Fig. 6a-d, the layers-vs-CC-size plot of Fig. 7 and,
for multi-annotator data, the consistency histograms of Fig. 8.

matplotlib is an optional extra (``pip install 'amodaldata[plots]'``; :mod:`amodaldata.plotting`); it is imported
only inside :func:`write_plots`, which raises an ImportError saying so when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import MISSING, new_figure, plots_available, save_figure

__all__ = ["MISSING", "plots_available", "write_plots"]


def write_plots(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the plots of a :func:`~amodaldata.stats.compute_stats` result into ``out_dir``; return the paths."""
    new_figure()                                   # fails early, with the message, without matplotlib
    out = Path(out_dir)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        written.append(save_figure(fig, out / name, "png"))

    def bars(ax: Any, histogram: dict[str, int], xlabel: str) -> None:
        keys = sorted(int(k) for k in histogram)
        ax.bar(keys, [histogram[str(k)] for k in keys], color="#4c72b0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")

    occ = result["occlusion"]
    fig = new_figure(figsize=(5, 3.5))
    ax = fig.subplots()
    edges = np.asarray(occ["all"]["histogram"]["bin_edges"])
    groups = [g for g in ("things", "stuff") if g in occ] or ["all"]
    bottom = np.zeros(edges.size - 1)
    for g, color in zip(groups, ("#4c72b0", "#dd8452")):
        counts = np.asarray(occ[g]["histogram"]["counts"])
        ax.bar(edges[:-1], counts, width=np.diff(edges), bottom=bottom, align="edge", color=color, label=g,
               edgecolor="white")
        bottom += counts
    if len(groups) > 1:
        ax.legend()
    ax.set_xlabel("occlusion level (hidden fraction of the region)")
    ax.set_ylabel("occluded regions")
    ax.set_title("Fig. 6a: occlusion level")
    save(fig, "fig6a_occlusion_level.png")

    comp = result["complexity"]
    for name, key, xlabel, title in (
            ("fig6b_components_per_annotation.png", "components_per_annotation", "connected components",
             "Fig. 6b: CCs per annotation"),
            ("fig6c_component_size.png", "component_size", "regions per CC", "Fig. 6c: CC size"),
            ("fig6d_layers_per_component.png", "layers_per_component", "depth layers", "Fig. 6d: layers per CC")):
        fig = new_figure(figsize=(5, 3.5))
        ax = fig.subplots()
        bars(ax, comp[key]["histogram"], xlabel)
        ax.set_title(title)
        save(fig, name)

    fig = new_figure(figsize=(5, 3.5))
    ax = fig.subplots()
    by_size = {int(k): v for k, v in comp["layers_by_size"].items() if int(k) >= 2}
    if by_size:
        sizes = np.array(sorted(by_size), dtype=float)
        ax.scatter(sizes, [by_size[int(s)]["mean_layers"] for s in sizes],
                   s=[8 + 4 * np.sqrt(by_size[int(s)]["components"]) for s in sizes], color="#4c72b0",
                   label="mean over CCs")
        fit = comp["log_fit"]
        if fit["slope"] is not None:
            xs = np.geomspace(sizes.min(), sizes.max(), 50)
            ax.plot(xs, fit["intercept"] + fit["slope"] * np.log2(xs), color="#c44e52",
                    label=f"{fit['intercept']:.2f} + {fit['slope']:.2f} log2(n)")
        ax.set_xscale("log", base=2)
        ax.legend()
    ax.set_xlabel("regions per CC")
    ax.set_ylabel("depth layers")
    ax.set_title("Fig. 7: depth layers vs CC size")
    save(fig, "fig7_layers_vs_component_size.png")

    agr = result["agreement"]
    if agr["images"]:
        fig = new_figure(figsize=(10, 3.5))
        for ax, (key, title) in zip(fig.subplots(1, 3), (("region_amodal", "region consistency, amodal"),
                                                         ("region_modal", "region consistency, modal"),
                                                         ("edge", "edge consistency"))):
            hist = agr[key]["histogram"]
            e = np.asarray(hist["bin_edges"])
            ax.bar(e[:-1], hist["counts"], width=np.diff(e), align="edge", color="#4c72b0", edgecolor="white")
            median = agr[key]["median"]
            if median is not None:
                ax.axvline(median, color="#c44e52")
            ax.set_xlabel("F-score")
            ax.set_title(f"{title} (median {median:.3f})" if median is not None else title)
        save(fig, "fig8_consistency.png")
    return written
