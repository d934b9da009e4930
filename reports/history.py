"""An offline page of every asv benchmark across commits (the rows of
:func:`sdebench.studies.performance.load_results`): inline SVG, no scripts."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import pandas as pd

from sdebench.reports.figures import OKABE_ITO, svg


def history_page(results: pd.DataFrame, order: list[str], title: str) -> str:
    """A self-contained HTML page (inline SVG, no scripts): per benchmark, its value at each
    commit of ``order`` (oldest left), one line per parameter combination."""
    position = {commit: i for i, commit in enumerate(order)}
    sections = []
    for benchmark, rows in results[results.commit.isin(position)].groupby("benchmark"):
        figure, axis = plt.subplots(figsize=(9, 3.6))
        for k, (params, line) in enumerate(rows.groupby("params", sort=False)):
            line = line.groupby("commit").value.mean().reindex(order)
            axis.plot(range(len(order)), line.to_numpy(), marker="o", markersize=3,
                      color=OKABE_ITO[k % len(OKABE_ITO)],
                      linestyle=("-", "--", ":", "-.")[(k // len(OKABE_ITO)) % 4],
                      label=params or benchmark.rsplit(".", 1)[-1])
        axis.set_xticks(range(len(order)), [commit[:8] for commit in order], rotation=90,
                        fontsize=6)
        axis.set_xlabel("commit (oldest left)")
        unit = "s" if ".time_" in benchmark else "bytes" if ".peakmem_" in benchmark else "value"
        axis.set_ylabel(unit)
        axis.set_title(benchmark, fontsize=9)
        axis.grid(True, alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        borderaxespad=0.0, ncol=1 + rows.params.nunique() // 22)
        sections.append(f"<h2>{html.escape(benchmark)}</h2>{svg(figure)}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif;"
            "max-width:1300px;margin:1em auto}svg{max-width:100%;height:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{len(order)} commits, oldest left; a gap is a "
            "benchmark that did not exist or failed at that commit.</p>"
            + "".join(sections) + "</body></html>")
