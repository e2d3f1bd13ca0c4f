// SPDX-License-Identifier: Apache-2.0
/// Run reports (`llmpc report RUN_DIR`): reads a run directory's plan.json, metrics.jsonl
/// and samples.txt, draws one chart per metric to PNG (rasterised by cairo) and SVG, and
/// writes report.html with the plan, the final metrics, the charts inline and the samples.
///
/// The chart layout (ranges, ticks, legend, point mapping) is computed once and replayed
/// on a small `Canvas` interface with two backends: cairo's image surface for PNG, and an
/// SVG writer that emits real `<text>` and `<polyline>` elements. (Cairo's own SVG surface
/// turns every label into glyph outlines, so the SVG would be neither searchable nor
/// checkable; text widths for both come from cairo's font metrics, so the two match.)
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lrt {

/// One metrics.jsonl row: its `step` and every other numeric, finite field by name
/// (non-numeric fields and `null`s, which is how NaN is written, are left out).
struct MetricsRow {
  int64_t step = 0;
  std::map<std::string, double> fields;
};

/// The rows of a metrics.jsonl file, in file order, with what was skipped.
struct MetricsLog {
  std::vector<MetricsRow> rows;
  /// E.g. a truncated last line (a run killed mid-write).
  std::vector<std::string> warnings;
};

/// Parses metrics.jsonl text; `path` is used in messages only. Blank lines are skipped. A
/// last line without its newline that does not parse is a warning (a run killed while
/// writing it); any other malformed line, a row that is not an object or has no integer
/// `step`, and a file with no rows are InvalidArgument errors naming `path:line`.
Expected<MetricsLog> parseMetrics(const std::string &text, const std::string &path);

/// One line of a chart: (x, y) pairs of equal length.
struct Series {
  std::string name;
  std::vector<double> x, y;
};

/// A chart: title, axis labels and its series, drawn in order with colours from a fixed
/// palette.
struct Chart {
  std::string name; ///< file stem: `<name>.png`, `<name>.svg`
  std::string title, xLabel, yLabel;
  std::vector<Series> series;
  bool logY = false; ///< log10 y axis (every y must be > 0)
};

/// The plot area inside a `width` x `height` chart, in pixels from the top left. The
/// smallest x over all series maps to `left`, the largest to `right`; the smallest y to
/// `bottom`, the largest to `top` (log10 of them with `logY`). When all x (or all y) are
/// equal the range is widened by 1 (y: 5% of |y|, or 1 when y is 0; log: half a decade)
/// on each side.
constexpr double kPlotLeft = 80, kPlotRight = 24, kPlotTop = 40, kPlotBottom = 56;

/// Draws `chart` to `pngPath` and `svgPath` (either may be empty to skip it). Errors:
/// InvalidArgument for a chart with no points or a non-positive y on a log axis, IoError
/// when a file cannot be written.
Status renderChart(const Chart &chart, int width, int height, const std::string &pngPath,
                   const std::string &svgPath);

/// The charts for a metrics log: loss with val_loss, lr, grad_norm, tokens_per_s, one
/// chart with every `reward*` field, then one per other numeric field (`step` and
/// `elapsed_s` are the axes, not plotted). Fields that no row has give no chart.
std::vector<Chart> chartsFor(const MetricsLog &log);

struct ReportOptions {
  /// Output folder (created); empty: `<runDir>/report`.
  std::string outDir;
  int width = 800, height = 480;
};

/// What writeReport produced.
struct ReportResult {
  std::string htmlPath;
  std::vector<std::string> files; ///< every file written, report.html last
  std::vector<std::string> warnings;
};

/// Writes the report of `runDir`: `<chart>.png` and `<chart>.svg` for each chart and
/// `report.html`. Errors: NotFound for a missing run directory or metrics.jsonl;
/// InvalidArgument for a `runDir` that is a file, or malformed metrics.jsonl or plan.json
/// (see parseMetrics); IoError
/// when the output cannot be written. A missing plan.json or samples.txt is a warning.
Status writeReport(const std::string &runDir, const ReportOptions &opts,
                   ReportResult *result = nullptr);

} // namespace lrt
