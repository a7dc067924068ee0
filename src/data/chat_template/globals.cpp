// The functions a template can call by name (transformers' raise_exception, strftime_now, namespace and dict,
// jinja2's range) and Python's two string-formatting languages (`fmt % args` and str.format). Never reads the
// clock except through the Renderer's `now`, and never formats through a locale (C / Python defaults only).
#include <cctype>
#include <cstdio>
#include <ctime>

#include "interp.h"
#include "text.h"

namespace prefopt::data::jinja {

std::vector<std::pair<std::string, Value>> make_globals() {
  std::vector<std::pair<std::string, Value>> g;
  for (const char* name :
       {"raise_exception", "strftime_now", "namespace", "dict", "range", "lipsum", "cycler", "joiner"}) {
    CallableObj c;
    c.type = CallableObj::Type::Global;
    c.name = name;
    g.emplace_back(name, make_callable(std::move(c)));
  }
  return g;
}

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox refuses larger ranges

int64_t range_arg(const Value& v) {
  if (v.kind != Kind::Int && v.kind != Kind::Bool)
    fail("'" + type_name(v) + "' object cannot be interpreted as an integer");
  return v.as_int();
}

// Python's datetime.strftime: %f, %z and %Z handled by Python itself (a naive datetime: empty zone), the rest
// by the C library's strftime in the C locale, as Python's time.strftime does.
std::string strftime_py(const std::string& fmt, std::time_t now) {
  std::string f;
  for (std::size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%' || k + 1 >= fmt.size()) {
      f.push_back(fmt[k]);
      continue;
    }
    const char c = fmt[++k];
    if (c == 'f')
      f += "000000";
    else if (c == 'z' || c == 'Z')
      continue;
    else
      f.push_back('%'), f.push_back(c);
  }
  std::tm tm{};
  localtime_r(&now, &tm);
  if (f.empty()) return "";
  for (std::size_t size = 256; size <= (1u << 20); size *= 4) {
    std::string buf(size, '\0');
    const std::size_t n = std::strftime(buf.data(), buf.size(), f.c_str(), &tm);
    if (n > 0) return buf.substr(0, n);
  }
  return "";
}

}  // namespace

Value call_global(Renderer& r, const std::string& name, const Args& a) {
  if (name == "raise_exception") {
    a.check("raise_exception", {"message"});
    fail("raise_exception: " + (a.pos.empty() ? std::string() : py_str(a.pos[0])));
  }
  if (name == "strftime_now") {
    a.check("strftime_now", {"format"});
    const Value* f = a.get(0, "format");
    if (!f || !f->is_str()) fail("strftime_now() argument must be str");
    return Value::str(strftime_py(f->s(), r.now()));
  }
  if (name == "namespace" || name == "dict") {
    if (a.pos.size() > 1) fail(name + " expected at most 1 argument, got " + std::to_string(a.pos.size()));
    DictObj d;
    if (!a.pos.empty()) {
      const Value& init = a.pos[0];
      if (init.is_undefined()) raise_undefined(init);  // dict() asks it for .keys, which an Undefined refuses
      if (init.kind == Kind::Dict) {
        d = init.dict();
      } else {
        for (const Value& pair : iterate(init)) {
          const std::vector<Value> kv = iterate(pair);
          if (kv.size() != 2)
            fail("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
          d.set(kv[0], kv[1]);
        }
      }
    }
    for (const auto& [k, v] : a.kw) d.set(Value::str(k), v);
    if (name == "dict") return make_dict(std::move(d));
    for (const auto& [k, v] : d.entries)
      if (k.is_str() && !k.s().empty() && k.s()[0] == '_')
        fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got " + py_repr(k) +
             ". Please rename the attribute.");
    Value v;
    v.kind = Kind::Namespace;
    auto ns = std::make_shared<NamespaceObj>();
    ns->attrs = std::move(d);
    r.track(ns);
    v.obj = std::move(ns);
    return v;
  }
  if (name == "range") {
    if (!a.kw.empty()) fail("range() takes no keyword arguments");
    if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
    int64_t start = 0, stop = 0, step = 1;
    if (a.pos.size() == 1)
      stop = range_arg(a.pos[0]);
    else
      start = range_arg(a.pos[0]), stop = range_arg(a.pos[1]);
    if (a.pos.size() == 3) step = range_arg(a.pos[2]);
    if (step == 0) fail("range() arg 3 must not be zero");
    const int64_t count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                                   : (start > stop ? (start - stop - step - 1) / -step : 0);
    if (count > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    std::vector<Value> out;
    for (int64_t k = 0; k < count; ++k) out.push_back(Value::integer(start + k * step));
    return Value::list(std::move(out));
  }
  fail("unsupported function \"" + name + "\"");
}

namespace {

std::string c_format(const std::string& spec, double d) {
  char buf[512];
  std::snprintf(buf, sizeof buf, spec.c_str(), d);
  return buf;
}
std::string c_format_int(const std::string& spec, long long v) {
  char buf[512];
  std::snprintf(buf, sizeof buf, spec.c_str(), v);
  return buf;
}

bool number_for(const Value& v, double& d, long long& i) {
  if (!v.is_number()) return false;
  d = v.as_double();
  i = v.kind == Kind::Float ? static_cast<long long>(v.f) : v.as_int();  // %d truncates a float, as Python does
  return true;
}

// One %-conversion of Python's printf-style formatting.
std::string convert(char conv, const std::string& flags, int width, int precision, const Value& v) {
  std::string spec =
      "%" + flags + (width >= 0 ? std::to_string(width) : "") + (precision >= 0 ? "." + std::to_string(precision) : "");
  double d = 0;
  long long i = 0;
  switch (conv) {
    case 's':
    case 'r':
    case 'a': {
      std::string s = conv == 's' ? py_str(v) : py_repr(v);
      if (precision >= 0) {
        const std::u32string cps = decode_utf8(s);
        if (static_cast<std::size_t>(precision) < cps.size())
          s = encode_utf8(cps.substr(0, static_cast<std::size_t>(precision)));
      }
      const int len = static_cast<int>(utf8_length(s));
      if (width > len) {
        const std::string fill(static_cast<std::size_t>(width - len), ' ');
        s = flags.find('-') != std::string::npos ? s + fill : fill + s;
      }
      return s;
    }
    case 'd':
    case 'i':
    case 'u':
      if (!number_for(v, d, i))
        fail("%" + std::string(1, conv) + " format: a real number is required, not " + type_name(v));
      return c_format_int(spec + "lld", i);
    case 'x':
    case 'X':
    case 'o': {
      if (v.kind != Kind::Int && v.kind != Kind::Bool)
        fail("%" + std::string(1, conv) + " format: an integer is required, not " + type_name(v));
      const long long x = v.as_int();
      std::string f = flags;
      const bool alt = f.find('#') != std::string::npos;
      if (alt) f.erase(f.find('#'), 1);
      std::string digits =
          c_format_int("%" + std::string(1, conv == 'o' ? 'o' : conv), static_cast<long long>(x < 0 ? -x : x));
      if (alt) digits = (conv == 'o' ? "0o" : conv == 'x' ? "0x" : "0X") + digits;
      if (x < 0)
        digits = "-" + digits;
      else if (f.find('+') != std::string::npos)
        digits = "+" + digits;
      else if (f.find(' ') != std::string::npos)
        digits = " " + digits;
      if (width > static_cast<int>(digits.size())) {
        const std::size_t fill = static_cast<std::size_t>(width) - digits.size();
        if (f.find('-') != std::string::npos)
          digits += std::string(fill, ' ');
        else if (f.find('0') != std::string::npos) {
          const std::size_t head = (x < 0 || f.find_first_of("+ ") != std::string::npos ? 1 : 0) + (alt ? 2 : 0);
          digits.insert(head, fill, '0');
        } else
          digits = std::string(fill, ' ') + digits;
      }
      return digits;
    }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
      if (!number_for(v, d, i)) fail("must be real number, not " + type_name(v));
      return c_format(spec + conv, d);
    case 'c': {
      if (v.is_str() && utf8_length(v.s()) == 1) return v.s();
      if (v.kind != Kind::Int) fail("%c requires an int or a unicode character, not " + type_name(v));
      std::string s;
      append_utf8(s, static_cast<char32_t>(v.i));
      return s;
    }
    default: fail(std::string("unsupported format character '") + conv + "'");
  }
}

}  // namespace

Value printf_format(const std::string& fmt, const Value& args) {
  const bool mapping = args.kind == Kind::Dict;
  std::vector<Value> list = args.kind == Kind::Tuple ? args.items() : std::vector<Value>{args};
  std::size_t next = 0;
  std::string out;
  auto take = [&]() -> const Value& {
    if (next >= list.size()) fail("not enough arguments for format string");
    return list[next++];
  };
  for (std::size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out.push_back(fmt[k]);
      continue;
    }
    if (++k >= fmt.size()) fail("incomplete format");
    const Value* mapped = nullptr;
    if (fmt[k] == '(') {
      const std::size_t close = fmt.find(')', k);
      if (close == std::string::npos) fail("incomplete format key");
      if (!mapping) fail("format requires a mapping");
      mapped = args.dict().find(std::string_view(fmt).substr(k + 1, close - k - 1));
      if (!mapped) fail("KeyError: " + py_repr_str(fmt.substr(k + 1, close - k - 1)));
      k = close + 1;
    }
    std::string flags;
    while (k < fmt.size() && std::string("-+ #0").find(fmt[k]) != std::string::npos) flags.push_back(fmt[k++]);
    int width = -1, precision = -1;
    auto number = [&](int& target) {
      if (k < fmt.size() && fmt[k] == '*') {
        const Value& w = take();
        if (w.kind != Kind::Int) fail("* wants int");
        target = static_cast<int>(w.i);
        ++k;
        return;
      }
      if (k < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[k]))) {
        target = 0;
        while (k < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[k])))
          target = target * 10 + (fmt[k++] - '0');
      }
    };
    number(width);
    if (k < fmt.size() && fmt[k] == '.') {
      ++k;
      precision = 0;
      number(precision);
    }
    while (k < fmt.size() && (fmt[k] == 'h' || fmt[k] == 'l' || fmt[k] == 'L')) ++k;
    if (k >= fmt.size()) fail("incomplete format");
    const char conv = fmt[k];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    out += convert(conv, flags, width, precision, mapped ? *mapped : take());
  }
  // Python skips this check when the single argument supports [] (a dict, a list, an Undefined).
  const bool subscriptable = mapping || args.kind == Kind::List || args.is_undefined();
  if (!subscriptable && next < list.size()) fail("not all arguments converted during string formatting");
  return Value::str(std::move(out));
}

namespace {

// format(value, spec) for the format-spec mini-language: [[fill]align][sign][#][0][width][,][.precision][type].
std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return py_str(v);
  std::size_t k = 0;
  std::string fill = " ";
  char align = 0;
  const std::u32string cps = decode_utf8(spec);
  std::size_t cp_skip = 0;
  if (cps.size() >= 2 && std::u32string(U"<>^=").find(cps[1]) != std::u32string::npos) {
    fill.clear();
    append_utf8(fill, cps[0]);
    align = static_cast<char>(cps[1]);
    cp_skip = 2;
  } else if (!cps.empty() && std::u32string(U"<>^=").find(cps[0]) != std::u32string::npos) {
    align = static_cast<char>(cps[0]);
    cp_skip = 1;
  }
  const std::string rest = encode_utf8(std::u32string_view(cps).substr(cp_skip));
  k = 0;
  char sign = 0;
  if (k < rest.size() && (rest[k] == '+' || rest[k] == '-' || rest[k] == ' ')) sign = rest[k++];
  bool alt = false, zero = false, comma = false;
  if (k < rest.size() && rest[k] == '#') alt = true, ++k;
  if (k < rest.size() && rest[k] == '0') zero = true, ++k;
  int width = 0, precision = -1;
  while (k < rest.size() && std::isdigit(static_cast<unsigned char>(rest[k]))) width = width * 10 + (rest[k++] - '0');
  if (k < rest.size() && (rest[k] == ',' || rest[k] == '_')) comma = true, ++k;
  if (k < rest.size() && rest[k] == '.') {
    precision = 0;
    ++k;
    while (k < rest.size() && std::isdigit(static_cast<unsigned char>(rest[k])))
      precision = precision * 10 + (rest[k++] - '0');
  }
  char type = k < rest.size() ? rest[k++] : 0;
  if (k != rest.size()) fail("Invalid format specifier '" + spec + "'");
  std::string body;
  const bool numeric = v.is_number();
  if (!numeric || type == 's') {
    if (type && type != 's')
      fail("Unknown format code '" + std::string(1, type) + "' for object of type '" + type_name(v) + "'");
    body = py_str(v);
    if (precision >= 0) {
      const std::u32string b = decode_utf8(body);
      if (static_cast<std::size_t>(precision) < b.size())
        body = encode_utf8(b.substr(0, static_cast<std::size_t>(precision)));
    }
    if (!align) align = '<';
  } else {
    if (!type) type = v.kind == Kind::Float ? (precision >= 0 ? 'g' : 0) : 'd';
    std::string flags;
    if (sign == '+' || sign == ' ') flags.push_back(sign);
    if (alt) flags.push_back('#');
    if (type == 0) {
      body = py_str(Value::number(v.as_double()));
      if (sign == '+' && v.as_double() >= 0) body = "+" + body;
    } else if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || type == 'c') {
      if (v.kind == Kind::Float) fail("Unknown format code '" + std::string(1, type) + "' for object of type 'float'");
      if (type == 'b') {
        unsigned long long x = static_cast<unsigned long long>(v.as_int() < 0 ? -v.as_int() : v.as_int());
        std::string bits;
        do bits.insert(bits.begin(), static_cast<char>('0' + (x & 1))), x >>= 1;
        while (x);
        body = (v.as_int() < 0 ? "-" : sign == '+' ? "+" : "") + std::string(alt ? "0b" : "") + bits;
      } else if (type == 'c') {
        append_utf8(body, static_cast<char32_t>(v.as_int()));
      } else {
        body = convert(type == 'd' ? 'd' : type, flags, -1, -1, Value::integer(v.as_int()));
      }
    } else if (std::string("eEfFgG%").find(type) != std::string::npos) {
      const double d = v.as_double() * (type == '%' ? 100.0 : 1.0);
      body = convert(type == '%' ? 'f' : type, flags, -1, precision < 0 ? 6 : precision, Value::number(d));
      if (type == '%') body += "%";
    } else {
      fail("Unknown format code '" + std::string(1, type) + "' for object of type '" + type_name(v) + "'");
    }
    if (comma) {
      const std::size_t start = body.find_first_of("0123456789");
      std::size_t end = body.find_first_not_of("0123456789", start);
      if (end == std::string::npos) end = body.size();
      for (std::size_t p = end; p > start + 3; p -= 3) body.insert(p - 3, ",");
    }
    if (zero && !align) fill = "0", align = '=';
    if (!align) align = '>';
  }
  const int len = static_cast<int>(utf8_length(body));
  if (width <= len) return body;
  const int total = width - len;
  std::string pad_l, pad_r;
  const int left = align == '<' ? 0 : align == '^' ? total / 2 : total;
  for (int p = 0; p < left; ++p) pad_l += fill;
  for (int p = 0; p < total - left; ++p) pad_r += fill;
  if (align == '=' && !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' '))
    return body.substr(0, 1) + pad_l + body.substr(1);
  return pad_l + body + pad_r;
}

}  // namespace

std::string str_format(const std::string& fmt, const Args& args) {
  std::string out;
  std::size_t auto_index = 0;
  for (std::size_t k = 0; k < fmt.size(); ++k) {
    const char c = fmt[k];
    if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}') {
        out.push_back('}');
        ++k;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    const std::size_t close = fmt.find('}', k);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, close - k - 1);
    k = close;
    std::string spec;
    char conversion = 0;
    if (const std::size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (const std::size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) fail("expected ':' after conversion specifier");
      conversion = field[bang + 1];
      if (conversion != 'r' && conversion != 's' && conversion != 'a')
        fail(std::string("Unknown conversion specifier ") + conversion);
      field.resize(bang);
    }
    const std::size_t first_end = field.find_first_of(".[");
    const std::string head = field.substr(0, first_end);
    Value v;
    if (head.empty()) {
      if (auto_index >= args.pos.size())
        fail("Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
      v = args.pos[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(head[0]))) {
      if (head.size() > 9 || head.find_first_not_of("0123456789") != std::string::npos)
        fail("Replacement index " + head + " out of range for positional args tuple");
      const std::size_t idx = std::stoul(head);
      if (idx >= args.pos.size()) fail("Replacement index " + head + " out of range for positional args tuple");
      v = args.pos[idx];
    } else {
      const Value* kv = args.kwarg(head);
      if (!kv) fail("KeyError: " + py_repr_str(head));
      v = *kv;
    }
    for (std::size_t p = first_end; p != std::string::npos && p < field.size();) {
      if (field[p] == '.') {
        const std::size_t e = field.find_first_of(".[", p + 1);
        v = get_attr(v, field.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1));
        p = e;
      } else {
        const std::size_t e = field.find(']', p);
        if (e == std::string::npos) fail("Missing ']' in format string");
        const std::string key = field.substr(p + 1, e - p - 1);
        const bool digits =
            !key.empty() && key.size() <= 18 && key.find_first_not_of("0123456789") == std::string::npos;
        v = get_item(v, digits ? Value::integer(std::stoll(key)) : Value::str(key));
        p = e + 1;
      }
      if (v.is_undefined()) raise_undefined(v);
    }
    if (conversion == 'r' || conversion == 'a')
      v = Value::str(py_repr(v));
    else if (conversion == 's')
      v = Value::str(py_str(v));
    out += format_spec(v, spec);
  }
  return out;
}

}  // namespace prefopt::data::jinja
