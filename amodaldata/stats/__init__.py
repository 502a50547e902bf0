"""Dataset statistics: every measurement of Zhu et al., "Semantic Amodal Segmentation" (Sec. 3-4, Fig. 5a,
Table 1, Fig. 6-8), on any amodal dataset.

One topic per module: :mod:`.summary` (Fig. 5a), :mod:`.occlusion` (Fig. 5a occlusion rows, Fig. 6a),
:mod:`.shape` (Table 1 convexity and simplicity), :mod:`.edges` (Table 1 edge density), :mod:`.complexity`
(occlusion DAG, Fig. 6b-d, Fig. 7), :mod:`.agreement` (Sec. 4 region and edge consistency, Fig. 8); the raster
geometry they share is in :mod:`.geometry`, the streaming accumulators in :mod:`.tally`. :mod:`.report` streams
the scenes once and lays out the tables; :mod:`.plots` draws the figures (optional matplotlib).

    from amodaldata.stats import compute_stats, format_report
    from converters import read
    result = compute_stats(read("COCO_amodal_val2014.json", format="cocoa"))
    print(format_report(result))
"""

from .plots import plots_available, write_plots
from .report import StatsAccumulator, compute_stats, format_report, write_json

__all__ = ["StatsAccumulator", "compute_stats", "format_report", "plots_available", "write_json", "write_plots"]
