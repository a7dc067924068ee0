// The one declaration of a loss's user-facing options. Each Options struct lists its options once, in an X-macro
// beside it (type, name, default, meaning); from that list come the struct's TORCH_ARG fields, the op schema's
// keyword arguments, the trainer registry's key/type/choice checks, the run-config documentation table and the
// declaration the Python drift test reads. This header holds that machinery; it computes no loss and knows no
// data format.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <torch/arg.h>

namespace prefopt {

/// One option value as a config file or a caller gives it: a bool, an integer, a real or a string. A class rather
/// than a bare std::variant so that a string literal is a string, not a bool.
class OptionValue {
 public:
  OptionValue(bool v) : value(v) {}
  OptionValue(int v) : value(static_cast<int64_t>(v)) {}
  OptionValue(long v) : value(static_cast<int64_t>(v)) {}
  OptionValue(long long v) : value(static_cast<int64_t>(v)) {}
  OptionValue(double v) : value(v) {}
  OptionValue(const char* v) : value(std::string(v)) {}
  OptionValue(std::string v) : value(std::move(v)) {}
  /// "bool", "integer", "number" or "string".
  std::string type_name() const;
  /// The value as the run config and Python write it: true, 3, 0.1 (shortest exact form), "sigmoid".
  std::string to_json() const;
  bool operator==(const OptionValue& other) const { return value == other.value; }
  std::variant<bool, int64_t, double, std::string> value;
};

/// Options by name, e.g. {{"beta", 0.1}, {"loss_type", "ipo"}}.
using OptionMap = std::map<std::string, OptionValue>;

/// What kind of value an option takes.
enum class OptionKind { Bool, Integer, Real, Choice, String };

/// One declared option, type-erased: what documentation, schemas and checks are generated from.
struct OptionSpec {
  std::string name;
  OptionKind kind = OptionKind::Real;
  /// The Options struct's default.
  OptionValue default_value = false;
  /// The accepted names of a Choice option, in declaration order.
  std::vector<std::string> choices;
  std::string doc;
  /// "float", "int", "bool" or "str": the op schema's type.
  std::string schema_type() const;
  /// "number", "integer", "bool" or "string": the run config's type.
  std::string config_type() const;
  /// `float beta=0.1`, `str loss_type="sigmoid"`: the op schema argument.
  std::string schema_argument() const;
};

/// How a C++ option type maps to an OptionValue. Specialised for double, int64_t, bool, and (through
/// PREFOPT_OPTION_CHOICES) each enum an Options struct uses.
template <typename T, typename Enable = void>
struct OptionType;

template <>
struct OptionType<double> {
  static constexpr OptionKind kind = OptionKind::Real;
  static std::vector<std::string> choices() { return {}; }
  static OptionValue to_value(double v) { return v; }
  /// An integer is accepted where a real is expected.
  static double from_value(const OptionValue& v, const std::string& context);
};

template <>
struct OptionType<int64_t> {
  static constexpr OptionKind kind = OptionKind::Integer;
  static std::vector<std::string> choices() { return {}; }
  static OptionValue to_value(int64_t v) { return v; }
  static int64_t from_value(const OptionValue& v, const std::string& context);
};

template <>
struct OptionType<bool> {
  static constexpr OptionKind kind = OptionKind::Bool;
  static std::vector<std::string> choices() { return {}; }
  static OptionValue to_value(bool v) { return v; }
  static bool from_value(const OptionValue& v, const std::string& context);
};

template <>
struct OptionType<std::string> {
  static constexpr OptionKind kind = OptionKind::String;
  static std::vector<std::string> choices() { return {}; }
  static OptionValue to_value(const std::string& v) { return v; }
  static std::string from_value(const OptionValue& v, const std::string& context);
};

namespace options_detail {
/// The string of a Choice option, or an error naming `context` and the type that came.
const std::string& choice_string(const OptionValue& v, const std::string& context);
[[noreturn]] void unknown_choice(const std::string& context, const std::string& got,
                                 const std::vector<std::string>& choices);
}  // namespace options_detail

/// Declares the values of an enum option, each named by its to_string (which must be declared before):
/// `PREFOPT_OPTION_CHOICES(TDPOVariant, kTDPO1, kTDPO2)`. Parsing a name matches these, so an enum's accepted
/// names are written once, in its to_string.
#define PREFOPT_OPTION_CHOICES(Enum, ...)                                                                   \
  template <>                                                                                               \
  struct OptionType<Enum> {                                                                                 \
    static constexpr OptionKind kind = OptionKind::Choice;                                                  \
    static std::vector<Enum> values() { return {__VA_ARGS__}; }                                             \
    static std::vector<std::string> choices() {                                                             \
      std::vector<std::string> names;                                                                       \
      for (Enum e : values()) names.push_back(to_string(e));                                                \
      return names;                                                                                         \
    }                                                                                                       \
    static OptionValue to_value(Enum v) { return to_string(v); }                                            \
    static Enum from_value(const OptionValue& v, const std::string& context) {                              \
      const std::string& name = ::prefopt::options_detail::choice_string(v, context);                       \
      for (Enum e : values()) {                                                                             \
        if (to_string(e) == name) return e;                                                                 \
      }                                                                                                     \
      ::prefopt::options_detail::unknown_choice(context, name, choices());                                  \
    }                                                                                                       \
  }

/// One option of an Options struct: its spec and how to read it into / out of the struct.
template <typename Options>
struct OptionField {
  OptionSpec spec;
  /// Parses `value` into `options` (an error naming `context`, the option and what was expected).
  std::function<void(Options& options, const OptionValue& value, const std::string& context)> set;
  std::function<OptionValue(const Options& options)> get;
};

/// The declared options of an Options struct, in declaration order. Specialised by PREFOPT_DECLARE_OPTIONS.
template <typename Options>
struct OptionTable;

namespace options_detail {
template <typename Options, typename T>
OptionField<Options> make_field(const char* name, const char* doc, T& (*access)(Options&)) {
  OptionField<Options> field;
  field.spec.name = name;
  field.spec.kind = OptionType<T>::kind;
  field.spec.choices = OptionType<T>::choices();
  field.spec.doc = doc;
  Options defaults;
  field.spec.default_value = OptionType<T>::to_value(access(defaults));
  field.set = [access, name = std::string(name)](Options& o, const OptionValue& v, const std::string& context) {
    // Errors read `loss "dpo": option "beta" must be ...` with a context, `beta must be ...` without (an op's).
    access(o) = OptionType<T>::from_value(v, context.empty() ? name : context + "option \"" + name + "\"");
  };
  field.get = [access](const Options& o) {
    Options copy = o;
    return OptionType<T>::to_value(access(copy));
  };
  return field;
}
}  // namespace options_detail

/// Expands one X-macro row into the Options struct's field.
#define PREFOPT_OPTION_FIELD(type, name, default_value, doc) TORCH_ARG(type, name) = default_value;
#define PREFOPT_OPTION_TABLE_ROW(type, name, default_value, doc) \
  ::prefopt::options_detail::make_field<Options, type>(#name, doc, [](Options& o) -> type& { return o.name(); }),

/// Specialises OptionTable for `OptionsType` from its X-macro `LIST`, at namespace prefopt scope after the struct.
#define PREFOPT_DECLARE_OPTIONS(OptionsType, LIST)                                \
  template <>                                                                      \
  struct OptionTable<OptionsType> {                                                \
    using Options = OptionsType;                                                   \
    static const std::vector<OptionField<Options>>& fields() {                     \
      static const std::vector<OptionField<Options>> table = {LIST(PREFOPT_OPTION_TABLE_ROW)}; \
      return table;                                                                \
    }                                                                              \
  }

/// The specs of `Options`' declared options.
template <typename Options>
std::vector<OptionSpec> option_specs() {
  std::vector<OptionSpec> specs;
  for (const auto& f : OptionTable<Options>::fields()) specs.push_back(f.spec);
  return specs;
}

namespace options_detail {
/// Error unless every key of `given` is in `allowed`, listing the valid ones. `context` prefixes it.
void check_keys(const OptionMap& given, const std::vector<std::string>& allowed, const std::string& context);
}  // namespace options_detail

/// Reads the options `given` names into `options` (others keep their values). Keys not declared for `Options`
/// and not in `extra_keys` (options a caller reads itself) are an error; so are values of the wrong type and
/// unknown choices. `context` prefixes every error, e.g. `loss "dpo": `.
template <typename Options>
void read_options(Options& options, const OptionMap& given, const std::string& context,
                  const std::vector<std::string>& extra_keys = {}) {
  std::vector<std::string> allowed = extra_keys;
  for (const auto& f : OptionTable<Options>::fields()) allowed.push_back(f.spec.name);
  options_detail::check_keys(given, allowed, context);
  for (const auto& f : OptionTable<Options>::fields()) {
    if (auto it = given.find(f.spec.name); it != given.end()) f.set(options, it->second, context);
  }
}

/// The keyword arguments of an op schema for `Options`' declared options, in declaration order, comma-separated
/// (`float beta=2.0, float gamma=0.5`); `exclude` names options the op takes in another form (each must be
/// declared).
std::string schema_arguments(const std::vector<OptionSpec>& specs, const std::vector<std::string>& exclude = {});
template <typename Options>
std::string schema_arguments(const std::vector<std::string>& exclude = {}) {
  return schema_arguments(option_specs<Options>(), exclude);
}

}  // namespace prefopt
