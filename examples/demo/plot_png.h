// A small line-plot writer for the demo: panels of named series drawn into an RGB image and saved as a PNG
// (uncompressed deflate, no library), with axes, min/max tick labels and a legend in a built-in 5x7 font. It draws
// what it is given; it never reads metrics files and never interpolates.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace demo {

/// One curve: (x, y) points in drawing order, named in the legend.
struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

/// One chart: a title and its curves, sharing the chart's axes.
struct PlotPanel {
  std::string title;
  std::vector<PlotSeries> series;
};

/// Writes the panels side by side as a PNG at `path` (written to a temporary name and renamed). Non-finite points
/// are skipped. Throws std::runtime_error when the file cannot be written.
///
/// Example:
/// ```
/// demo::write_plot_png("out/metrics.png", {{"loss", {{"sft", {{1, 2.3}, {2, 1.9}}}}}});
/// ```
void write_plot_png(const std::string& path, const std::vector<PlotPanel>& panels);

}  // namespace demo
