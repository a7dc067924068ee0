// Progress bar / plain lines on stderr and the metrics.jsonl writer. Formats and writes only.
#include <prefopt/train/logging.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"

namespace prefopt::train {

namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return buf;
}

std::string format_entry(const LogEntry& entry, bool is_eval) {
  std::ostringstream out;
  out << (is_eval ? "eval " : "") << "step " << entry.step << " epoch " << std::fixed;
  out.precision(2);
  out << entry.epoch;
  out.unsetf(std::ios::fixed);
  out.precision(5);
  for (const auto& [name, value] : entry.metrics) out << ' ' << name << '=' << value;
  return out.str();
}

}  // namespace

std::string to_string(ProgressMode mode) {
  switch (mode) {
    case ProgressMode::Auto: return "auto";
    case ProgressMode::Bar: return "bar";
    case ProgressMode::Lines: return "lines";
    case ProgressMode::Silent: return "silent";
  }
  return "?";
}

ProgressMode progress_mode_from_string(std::string_view name) {
  for (auto mode : {ProgressMode::Auto, ProgressMode::Bar, ProgressMode::Lines, ProgressMode::Silent}) {
    if (name == to_string(mode)) return mode;
  }
  TORCH_CHECK(false, "unknown progress mode \"", std::string(name),
              "\"; valid values: \"auto\", \"bar\", \"lines\", \"silent\"");
}

void MetricAverager::add(const std::string& name, double value, double weight) {
  auto& s = sums[name];
  if (std::isnan(value)) return;
  s.first += value * weight;
  s.second += weight;
}

std::map<std::string, double> MetricAverager::means() const {
  std::map<std::string, double> out;
  for (const auto& [name, s] : sums) out[name] = s.second > 0 ? s.first / s.second : NAN;
  return out;
}

ProgressReporter::ProgressReporter(ProgressMode mode, int64_t total_steps, int64_t start_step)
    : total_(total_steps), start_(start_step), t0_(std::chrono::steady_clock::now()) {
  silent_ = mode == ProgressMode::Silent;
  bar_ = mode == ProgressMode::Bar || (mode == ProgressMode::Auto && ::isatty(STDERR_FILENO) == 1);
}

ProgressReporter::~ProgressReporter() { finish(); }

void ProgressReporter::step(int64_t step, const std::map<std::string, double>& metrics) {
  if (silent_ || !bar_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const double done = static_cast<double>(step - start_);
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - step) / rate : NAN;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * static_cast<double>(step) / static_cast<double>(total_)) : 0;
  std::string bar(static_cast<size_t>(std::min(filled, kWidth)), '#');
  bar.resize(kWidth, '.');
  char line[256];
  auto loss = metrics.find("loss");
  std::snprintf(line, sizeof line, "\r[%s] %lld/%lld  %.2f it/s  elapsed %s  eta %s  loss %.4f\x1b[K", bar.c_str(),
                static_cast<long long>(step), static_cast<long long>(total_), rate, format_duration(elapsed).c_str(),
                format_duration(eta).c_str(), loss == metrics.end() ? NAN : loss->second);
  std::fputs(line, stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressReporter::log(const LogEntry& entry, bool is_eval) {
  if (silent_) return;
  if (bar_ && drawn_) std::fputs("\r\x1b[K", stderr);
  std::fprintf(stderr, "%s\n", format_entry(entry, is_eval).c_str());
  std::fflush(stderr);
}

void ProgressReporter::finish() {
  if (bar_ && drawn_) {
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
  drawn_ = false;
}

std::string metrics_json_line(const LogEntry& entry) {
  nlohmann::ordered_json line;
  line["step"] = entry.step;
  line["epoch"] = entry.epoch;
  for (const auto& [name, value] : entry.metrics) {
    if (std::isfinite(value)) {
      line[name] = value;
    } else {
      line[name] = nullptr;
    }
  }
  return line.dump() + "\n";
}

MetricsWriter::MetricsWriter(std::string path) : path_(std::move(path)) {}

void MetricsWriter::append(const LogEntry& entry) {
  if (path_.empty()) return;
  const std::string line = metrics_json_line(entry);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  TORCH_CHECK(fd >= 0, "cannot open \"", path_, "\" for appending: ", std::strerror(errno));
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int saved = errno;
  ::close(fd);
  TORCH_CHECK(written == static_cast<ssize_t>(line.size()), "cannot append to \"", path_, "\": ",
              std::strerror(saved));
}

void MetricsWriter::truncate_after(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string kept, text;
  while (std::getline(in, text)) {
    if (text.empty()) continue;
    try {
      auto line = nlohmann::json::parse(text);
      if (line.contains("step") && line["step"].is_number_integer() && line["step"].get<int64_t>() > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a torn last line of a killed run
    }
    kept += text + "\n";
  }
  in.close();
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << kept;
    TORCH_CHECK(out.good(), "cannot write \"", tmp, "\"");
  }
  const std::string error = files::publish_file(tmp, path);
  TORCH_CHECK(error.empty(), "cannot rename \"", tmp, "\" to \"", path, "\": ", error);
}

}  // namespace prefopt::train
