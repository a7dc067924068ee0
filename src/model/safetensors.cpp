// safetensors reader and writer (see include/prefopt/model/safetensors.h for the checks). Every number taken
// from a header is checked against the file size, with overflow-safe arithmetic, before it sizes an allocation
// or a read; the reader never reads past the end of the file and never returns a tensor it could not fill.
#include <prefopt/model/safetensors.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "prefopt's safetensors reader assumes a little-endian host (the format stores little-endian data)"
#endif

namespace prefopt::model::safetensors {
namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above this size; so do we, which also bounds the allocation.
constexpr uint64_t kMaxHeaderBytes = 100000000;

struct DtypeInfo {
  const char* name;
  torch::Dtype dtype;
  int64_t size;
};

const DtypeInfo kDtypes[] = {
    {"BOOL", torch::kBool, 1},           {"U8", torch::kByte, 1},     {"I8", torch::kChar, 1},
    {"I16", torch::kShort, 2},           {"U16", torch::kUInt16, 2},  {"F16", torch::kHalf, 2},
    {"BF16", torch::kBFloat16, 2},       {"I32", torch::kInt, 4},     {"U32", torch::kUInt32, 4},
    {"F32", torch::kFloat, 4},           {"F64", torch::kDouble, 8},  {"I64", torch::kLong, 8},
    {"U64", torch::kUInt64, 8},          {"F8_E4M3", torch::kFloat8_e4m3fn, 1},
    {"F8_E5M2", torch::kFloat8_e5m2, 1},
};

std::string known_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// Reads exactly size bytes at offset, or raises an error naming the file and what was being read.
void read_exact(std::ifstream& in, const std::string& path, uint64_t offset, char* out, uint64_t size,
                const std::string& what) {
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  uint64_t done = 0;
  constexpr uint64_t kStep = uint64_t{1} << 30;  // std::streamsize is signed: read in bounded steps
  while (in && done < size) {
    const uint64_t step = std::min(kStep, size - done);
    in.read(out + done, static_cast<std::streamsize>(step));
    done += static_cast<uint64_t>(in.gcount());
  }
  TORCH_CHECK(done == size, "safetensors file '", path, "': could not read ", what, " (", size, " bytes at offset ",
              offset, "; got ", done, "): the file is truncated or unreadable");
}

// Rejects repeated keys in any object of the header; nlohmann would otherwise keep the last one silently.
struct DuplicateKeyCheck {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  }
};

std::string describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// A non-negative JSON integer as uint64, or an error naming the file, the tensor and the field.
uint64_t as_offset(const json& value, const std::string& path, const std::string& name, const char* field) {
  TORCH_CHECK(value.is_number_unsigned(), "safetensors file '", path, "': tensor '", name, "': ", field,
              " must hold non-negative integers, got ", describe(value));
  return value.get<uint64_t>();
}

}  // namespace

bool dtype_from_name(const std::string& name, torch::Dtype* dtype, int64_t* element_size) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      if (dtype) *dtype = d.dtype;
      if (element_size) *element_size = d.size;
      return true;
    }
  }
  return false;
}

std::string dtype_name(torch::Dtype dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  TORCH_CHECK(false, "safetensors: dtype ", dtype, " cannot be stored; the format stores ", known_dtypes());
}

File::File(std::string path) : path_(std::move(path)) {
  const files::Status st = files::status(path_);
  TORCH_CHECK(st.exists, "safetensors file '", path_, "' does not exist");
  TORCH_CHECK(st.regular, "safetensors file '", path_, "' is not a regular file");
  file_size_ = st.size;
  std::ifstream in(path_, std::ios::binary);
  TORCH_CHECK(in.is_open(), "safetensors file '", path_, "' cannot be opened for reading");

  TORCH_CHECK(file_size_ >= 8, "safetensors file '", path_, "' is truncated: ", file_size_,
              " bytes, shorter than the 8-byte header length");
  unsigned char length_bytes[8];
  read_exact(in, path_, 0, reinterpret_cast<char*>(length_bytes), 8, "the header length");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | length_bytes[i];
  TORCH_CHECK(header_size <= file_size_ - 8, "safetensors file '", path_, "': header length ", header_size,
              " runs past the end of the file (", file_size_, " bytes, so at most ", file_size_ - 8,
              " bytes of header)");
  TORCH_CHECK(header_size <= kMaxHeaderBytes, "safetensors file '", path_, "': header length ", header_size,
              " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  TORCH_CHECK(header_size >= 2, "safetensors file '", path_, "': header length ", header_size,
              " is too short to hold a JSON object");
  data_start_ = 8 + header_size;

  std::string header(header_size, '\0');
  read_exact(in, path_, 8, header.data(), header_size, "the header");
  TORCH_CHECK(header[0] == '{', "safetensors file '", path_, "': the header must start with '{', got byte 0x",
              std::hex, static_cast<int>(static_cast<unsigned char>(header[0])));
  DuplicateKeyCheck duplicates;
  json root;
  try {
    root = json::parse(header, std::ref(duplicates), /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "safetensors file '", path_, "': the header is not valid JSON: ", e.what());
  }
  TORCH_CHECK(duplicates.duplicate.empty(), "safetensors file '", path_, "': the header repeats the key '",
              duplicates.duplicate, "'");
  TORCH_CHECK(root.is_object(), "safetensors file '", path_, "': the header must be a JSON object");
  // The specification pads with spaces only; nlohmann also accepts tabs and newlines after the object.
  const size_t last = header.find_last_not_of(' ');
  TORCH_CHECK(last != std::string::npos && header[last] == '}', "safetensors file '", path_,
              "': the header must be a JSON object followed only by space padding");

  const uint64_t buffer_size = file_size_ - data_start_;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;  // the reference implementation reads null as "no metadata"
      TORCH_CHECK(value.is_object(), "safetensors file '", path_, "': __metadata__ must be an object of strings, got ",
                  describe(value));
      for (const auto& [key, text] : value.items()) {
        TORCH_CHECK(text.is_string(), "safetensors file '", path_, "': __metadata__ value '", key,
                    "' must be a string, got ", describe(text));
        metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    TORCH_CHECK(!name.empty(), "safetensors file '", path_, "': a tensor has an empty name");
    TORCH_CHECK(value.is_object(), "safetensors file '", path_, "': tensor '", name,
                "' must be an object with dtype, shape and data_offsets, got ", describe(value));
    for (const auto& [key, unused] : value.items()) {
      TORCH_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", "safetensors file '", path_,
                  "': tensor '", name, "' has the unknown field '", key, "' (expected dtype, shape, data_offsets)");
    }
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      TORCH_CHECK(value.contains(field), "safetensors file '", path_, "': tensor '", name, "' has no ", field);
    }
    TensorEntry entry;
    entry.name = name;

    const json& dtype = value.at("dtype");
    TORCH_CHECK(dtype.is_string(), "safetensors file '", path_, "': tensor '", name, "': dtype must be a string, got ",
                describe(dtype));
    entry.dtype = dtype.get<std::string>();
    int64_t element_size = 0;
    TORCH_CHECK(dtype_from_name(entry.dtype, &entry.scalar_type, &element_size), "safetensors file '", path_,
                "': tensor '", name, "' has unknown dtype '", entry.dtype, "' (supported: ", known_dtypes(), ")");

    const json& shape = value.at("shape");
    TORCH_CHECK(shape.is_array(), "safetensors file '", path_, "': tensor '", name,
                "': shape must be a list of non-negative integers, got ", describe(shape));
    // Element count, checked for overflow against the largest byte count a file can hold.
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& dim : shape) {
      TORCH_CHECK(dim.is_number_unsigned() && dim.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
                  "safetensors file '", path_, "': tensor '", name,
                  "': shape must be a list of non-negative integers, got ", describe(shape));
      const uint64_t d = dim.get<uint64_t>();
      entry.shape.push_back(static_cast<int64_t>(d));
      if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / d) overflow = true;
      numel = overflow ? 0 : numel * d;
    }
    const bool empty = std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end();
    if (empty) overflow = false, numel = 0;
    TORCH_CHECK(!overflow && numel <= std::numeric_limits<uint64_t>::max() / uint64_t(element_size),
                "safetensors file '", path_, "': tensor '", name, "': shape ", describe(shape),
                " has more elements than any file can hold");
    const uint64_t nbytes = numel * uint64_t(element_size);

    const json& offsets = value.at("data_offsets");
    TORCH_CHECK(offsets.is_array() && offsets.size() == 2, "safetensors file '", path_, "': tensor '", name,
                "': data_offsets must be [begin, end], got ", describe(offsets));
    entry.begin = as_offset(offsets[0], path_, name, "data_offsets");
    entry.end = as_offset(offsets[1], path_, name, "data_offsets");
    TORCH_CHECK(entry.begin <= entry.end, "safetensors file '", path_, "': tensor '", name, "': data_offsets [",
                entry.begin, ", ", entry.end, "] has begin after end");
    TORCH_CHECK(entry.end <= buffer_size, "safetensors file '", path_, "': tensor '", name, "': data_offsets [",
                entry.begin, ", ", entry.end, "] run past the end of the file (the byte buffer after the header is ",
                buffer_size, " bytes)");
    TORCH_CHECK(entry.end - entry.begin == nbytes, "safetensors file '", path_, "': tensor '", name,
                "': data_offsets [", entry.begin, ", ", entry.end, "] span ", entry.end - entry.begin,
                " bytes, but shape ", describe(shape), " of ", entry.dtype, " needs ", nbytes, " bytes");
    entries_.push_back(std::move(entry));
  }

  // The buffer must be covered exactly: sorted by offset, each tensor starts where the previous one ended.
  std::stable_sort(entries_.begin(), entries_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const auto& entry : entries_) {
    TORCH_CHECK(entry.begin >= covered, "safetensors file '", path_, "': tensors '", previous->name, "' [",
                previous->begin, ", ", previous->end, ") and '", entry.name, "' [", entry.begin, ", ", entry.end,
                ") overlap");
    TORCH_CHECK(entry.begin == covered, "safetensors file '", path_, "': bytes [", covered, ", ", entry.begin,
                ") of the byte buffer belong to no tensor (the buffer must be entirely indexed)");
    covered = entry.end;
    previous = &entry;
  }
  TORCH_CHECK(covered == buffer_size, "safetensors file '", path_, "': bytes [", covered, ", ", buffer_size,
              ") at the end of the byte buffer belong to no tensor (the buffer must be entirely indexed)");
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

bool File::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorEntry& File::entry(const std::string& name) const {
  const auto it = index_.find(name);
  TORCH_CHECK(it != index_.end(), "safetensors file '", path_, "' has no tensor named '", name, "'");
  return entries_[it->second];
}

torch::Tensor File::load(const std::string& name) const {
  const TensorEntry& e = entry(name);
  torch::Tensor out = torch::empty(e.shape, torch::TensorOptions().dtype(e.scalar_type));
  const uint64_t nbytes = e.end - e.begin;
  if (nbytes == 0) return out;
  const uint64_t size_now = files::status(path_).size;
  TORCH_CHECK(size_now >= data_start_ + e.end, "safetensors file '", path_, "' changed size since it was opened (",
              file_size_, " bytes then, ", size_now, " now); cannot read tensor '", name, "'");
  std::ifstream in(path_, std::ios::binary);
  TORCH_CHECK(in.is_open(), "safetensors file '", path_, "' cannot be opened for reading");
  read_exact(in, path_, data_start_ + e.begin, static_cast<char*>(out.data_ptr()), nbytes,
             "the data of tensor '" + name + "'");
  return out;
}

std::map<std::string, torch::Tensor> File::load_all() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : entries_) out.emplace(e.name, load(e.name));
  return out;
}

std::map<std::string, torch::Tensor> load_file(const std::string& path) { return File(path).load_all(); }

void save_file(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
               const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given, which is also their order in the byte buffer.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(!name.empty() && name != "__metadata__", "safetensors save_file('", path,
                "'): tensor names must be non-empty and not __metadata__, got '", name, "'");
    TORCH_CHECK(seen.insert(name).second, "safetensors save_file('", path, "'): the tensor name '", name,
                "' is given twice");
    TORCH_CHECK(tensor.defined(), "safetensors save_file('", path, "'): tensor '", name, "' is undefined");
    const std::string dtype = dtype_name(tensor.scalar_type());
    torch::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(cpu.numel()) * static_cast<uint64_t>(cpu.element_size());
    header[name] = {{"dtype", dtype}, {"shape", cpu.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(out.is_open(), "safetensors save_file: cannot open '", tmp, "' for writing");
    char length_bytes[8];
    for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
    out.write(length_bytes, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data) {
      const char* bytes = static_cast<const char*>(t.data_ptr());
      uint64_t left = static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
      while (out && left > 0) {
        const uint64_t step = std::min<uint64_t>(left, uint64_t{1} << 30);
        out.write(bytes, static_cast<std::streamsize>(step));
        bytes += step;
        left -= step;
      }
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      TORCH_CHECK(false, "safetensors save_file: writing '", tmp, "' failed (disk full or unwritable)");
    }
  }
  const std::string error = files::publish_file(tmp, path);
  if (!error.empty()) {
    std::remove(tmp.c_str());
    TORCH_CHECK(false, "safetensors save_file: cannot rename '", tmp, "' to '", path, "': ", error);
  }
}

}  // namespace prefopt::model::safetensors
