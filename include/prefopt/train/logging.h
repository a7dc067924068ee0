// Training progress and the metrics file: a progress bar with rate and ETA when stderr is a terminal (plain lines
// otherwise), and metrics.jsonl, one JSON object per logging step or evaluation with TRL's metric names. Only
// formats and writes; never computes a metric.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <prefopt/train/trainer.h>

namespace prefopt::train {

/// Reports training progress on stderr.
///
/// Example:
/// ```
/// prefopt::train::ProgressReporter progress(prefopt::train::ProgressMode::Auto, /*total_steps=*/100, /*start=*/0);
/// progress.step(1, {{"loss", 0.69}});
/// progress.log(entry, /*is_eval=*/false);   // a line (above the bar on a terminal)
/// progress.finish();
/// ```
class ProgressReporter {
 public:
  ProgressReporter(ProgressMode mode, int64_t total_steps, int64_t start_step);
  ~ProgressReporter();
  /// After optimizer step `step`: redraws the bar (bar mode only) with rate (steps/s) and ETA.
  void step(int64_t step, const std::map<std::string, double>& metrics);
  /// Prints a logging-step or evaluation entry as one line (Lines and Bar modes).
  void log(const LogEntry& entry, bool is_eval);
  /// Ends the bar's line.
  void finish();
  /// Whether the bar is drawn (Bar, or Auto on a terminal).
  bool bar() const { return bar_; }

 private:
  bool bar_ = false, silent_ = false, drawn_ = false;
  int64_t total_, start_;
  std::chrono::steady_clock::time_point t0_;
};

/// One metrics.jsonl line: {"step": s, "epoch": e, <metrics>...}; non-finite values are written as null.
std::string metrics_json_line(const LogEntry& entry);

/// Appends lines to a metrics.jsonl, each with one write(2) on an O_APPEND descriptor so a crash never leaves
/// half a line mid-file.
class MetricsWriter {
 public:
  /// path empty: writes nothing.
  explicit MetricsWriter(std::string path = "");
  void append(const LogEntry& entry);
  /// Rewrites the file keeping only the lines whose "step" is <= step (used when resuming, so metrics logged
  /// after the checkpoint by an interrupted run are not duplicated). Atomic (temporary file + rename).
  static void truncate_after(const std::string& path, int64_t step);

 private:
  std::string path_;
};

}  // namespace prefopt::train
