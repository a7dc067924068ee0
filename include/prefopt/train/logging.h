// Training progress and the metrics file: a progress bar with rate and ETA when stderr is a terminal (plain lines
// otherwise), and metrics.jsonl, one JSON object per logging step or evaluation with TRL's metric names. Only
// formats and writes; never computes a metric.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace prefopt::train {

/// How progress is reported on stderr.
enum class ProgressMode {
  Auto,    ///< "auto": a bar with rate and ETA when stderr is a terminal, plain lines otherwise
  Bar,     ///< "bar"
  Lines,   ///< "lines": one line per logging step
  Silent,  ///< "silent": nothing (metrics still go to metrics.jsonl and TrainResult)
};
std::string to_string(ProgressMode mode);
ProgressMode progress_mode_from_string(std::string_view name);

/// Metrics of one optimizer step, one logging interval or one evaluation, under TRL's names: "loss",
/// "learning_rate", "grad_norm", "epoch", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
/// "rewards/margins", "logps/chosen", "logps/rejected", ... (evaluation: "eval_loss", "eval_rewards/...",
/// and for lists "eval_ranking/accuracy", "eval_ranking/kendall_tau", "eval_ranking/ndcg").
struct LogEntry {
  /// Optimizer steps completed when the entry was made (1-based for training steps).
  int64_t step = 0;
  /// Fractional epoch: completed epochs + the fraction of this epoch's micro-batches done.
  double epoch = 0.0;
  std::map<std::string, double> metrics;
};

/// Weighted means of named values; a NaN value (a metric undefined on a batch) is left out of its mean.
///
/// Example:
/// ```
/// prefopt::train::MetricAverager avg;
/// avg.add("loss", 0.7, /*weight=*/4);
/// avg.means().at("loss");   // 0.7
/// ```
struct MetricAverager {
  /// name -> (weighted sum, total weight).
  std::map<std::string, std::pair<double, double>> sums;
  void add(const std::string& name, double value, double weight = 1.0);
  std::map<std::string, double> means() const;
  void clear() { sums.clear(); }
};

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
