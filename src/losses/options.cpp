// Option declarations: value conversion with errors naming the option, the op-schema form of a spec, and the
// shortest exact text of a default. Never holds a loss's options itself (each loss header declares its own).
#include <prefopt/losses/options.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <c10/util/Exception.h>

namespace prefopt {

namespace {

std::string quoted_list(const std::vector<std::string>& names) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size(); ++i) out << (i ? ", " : "") << '"' << names[i] << '"';
  return names.empty() ? std::string("none") : out.str();
}

// The shortest decimal that reads back as exactly `v`, always with a '.' or an exponent so it reads as a real.
std::string shortest_real(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s(buf);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string OptionValue::type_name() const {
  switch (value.index()) {
    case 0: return "bool";
    case 1: return "integer";
    case 2: return "number";
    default: return "string";
  }
}

std::string OptionValue::to_json() const {
  switch (value.index()) {
    case 0: return std::get<bool>(value) ? "true" : "false";
    case 1: return std::to_string(std::get<int64_t>(value));
    case 2: return shortest_real(std::get<double>(value));
    default: {
      std::string out = "\"";
      for (char c : std::get<std::string>(value)) {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\n': out += "\\n"; break;
          case '\t': out += "\\t"; break;
          default: out += c;
        }
      }
      return out + "\"";
    }
  }
}

std::string OptionSpec::schema_type() const {
  switch (kind) {
    case OptionKind::Bool: return "bool";
    case OptionKind::Integer: return "int";
    case OptionKind::Real: return "float";
    case OptionKind::Choice:
    case OptionKind::String: return "str";
  }
  return "?";
}

std::string OptionSpec::config_type() const {
  switch (kind) {
    case OptionKind::Bool: return "bool";
    case OptionKind::Integer: return "integer";
    case OptionKind::Real: return "number";
    case OptionKind::Choice:
    case OptionKind::String: return "string";
  }
  return "?";
}

std::string OptionSpec::schema_argument() const {
  std::string value;
  if (auto b = std::get_if<bool>(&default_value.value)) {
    value = *b ? "True" : "False";
  } else {
    value = default_value.to_json();
  }
  return schema_type() + " " + name + "=" + value;
}

double OptionType<double>::from_value(const OptionValue& v, const std::string& context) {
  if (auto d = std::get_if<double>(&v.value)) return *d;
  if (auto i = std::get_if<int64_t>(&v.value)) return static_cast<double>(*i);
  TORCH_CHECK(false, context, " must be a number, got ", v.type_name());
}

int64_t OptionType<int64_t>::from_value(const OptionValue& v, const std::string& context) {
  if (auto i = std::get_if<int64_t>(&v.value)) return *i;
  TORCH_CHECK(false, context, " must be an integer, got ", v.type_name());
}

bool OptionType<bool>::from_value(const OptionValue& v, const std::string& context) {
  if (auto b = std::get_if<bool>(&v.value)) return *b;
  TORCH_CHECK(false, context, " must be a bool, got ", v.type_name());
}

std::string OptionType<std::string>::from_value(const OptionValue& v, const std::string& context) {
  if (auto s = std::get_if<std::string>(&v.value)) return *s;
  TORCH_CHECK(false, context, " must be a string, got ", v.type_name());
}

namespace options_detail {

const std::string& choice_string(const OptionValue& v, const std::string& context) {
  if (auto s = std::get_if<std::string>(&v.value)) return *s;
  TORCH_CHECK(false, context, " must be a string, got ", v.type_name());
}

void unknown_choice(const std::string& context, const std::string& got, const std::vector<std::string>& choices) {
  std::string names;
  for (size_t i = 0; i < choices.size(); ++i) names += (i ? ", " : "") + choices[i];
  TORCH_CHECK(false, context, " must be one of: ", names, "; got '", got, "'");
}

void check_keys(const OptionMap& given, const std::vector<std::string>& allowed, const std::string& context) {
  std::vector<std::string> sorted = allowed;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [key, value] : given) {
    TORCH_CHECK(std::binary_search(sorted.begin(), sorted.end(), key), context, "unknown option \"", key,
                "\"; valid options: ", quoted_list(sorted));
  }
}

}  // namespace options_detail

std::string schema_arguments(const std::vector<OptionSpec>& specs, const std::vector<std::string>& exclude) {
  for (const auto& name : exclude) {
    TORCH_CHECK(std::any_of(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.name == name; }),
                "schema_arguments: \"", name, "\" is not a declared option");
  }
  std::string out;
  for (const auto& spec : specs) {
    if (std::find(exclude.begin(), exclude.end(), spec.name) != exclude.end()) continue;
    if (!out.empty()) out += ", ";
    out += spec.schema_argument();
  }
  return out;
}

}  // namespace prefopt
