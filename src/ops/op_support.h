// What the loss operators share: optional-tensor and string-view conversion, the metrics map as one vector, and
// the op schema's option arguments and their reading into an Options struct, both from the option declaration
// (prefopt/losses/options.h). Private to src/ops; computes no loss.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <prefopt/losses/loss_output.h>
#include <prefopt/losses/options.h>

namespace prefopt::ops {

inline std::string_view view(c10::string_view s) { return {s.data(), s.size()}; }

inline at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

/// The loss's metrics as one float32 vector ordered by name (the map's order), which the Python wrappers pair
/// with the sorted names.
inline at::Tensor metrics_vector(const LossOutput& out) {
  std::vector<at::Tensor> values;
  values.reserve(out.metrics.size());
  for (const auto& entry : out.metrics) values.push_back(entry.second.reshape({1}));
  return at::cat(values);
}

/// The declared options of `Options` as an op takes them: `schema()` is the comma-separated keyword arguments
/// (declaration order, names, types and defaults from the declaration), and `read(args...)` fills an Options from
/// the values the dispatcher passes for them, in the same order. An op whose C++ signature disagrees with the
/// declaration fails when it is registered (the dispatcher checks the types against the schema).
template <typename Options>
class OpOptions {
 public:
  /// `exclude`: declared options the op takes in another form (e.g. as a state tensor).
  explicit OpOptions(std::vector<std::string> exclude = {}) : exclude_(std::move(exclude)) {}

  std::string schema() const { return schema_arguments<Options>(exclude_); }

  template <typename... Args>
  Options read(Args... args) const {
    std::vector<const OptionField<Options>*> fields;
    for (const auto& f : OptionTable<Options>::fields()) {
      if (std::find(exclude_.begin(), exclude_.end(), f.spec.name) == exclude_.end()) fields.push_back(&f);
    }
    TORCH_CHECK(fields.size() == sizeof...(Args), "internal: ", sizeof...(Args), " option arguments for ",
                fields.size(), " declared options");
    Options options;
    size_t i = 0;
    (fields[i++]->set(options, value(args), ""), ...);
    return options;
  }

 private:
  static OptionValue value(double v) { return v; }
  static OptionValue value(int64_t v) { return v; }
  static OptionValue value(bool v) { return v; }
  static OptionValue value(c10::string_view v) { return std::string(v.data(), v.size()); }
  std::vector<std::string> exclude_;
};

}  // namespace prefopt::ops
