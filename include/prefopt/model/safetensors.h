// safetensors: reads and writes the safetensors file format (https://github.com/huggingface/safetensors,
// "Format" section) into and from CPU tensors. It validates every header field against the file's size before
// a byte of tensor data is read, and it never maps, executes or trusts anything in the file it has not checked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace prefopt::model::safetensors {

/// One tensor of a safetensors header, as validated by File.
struct TensorEntry {
  /// The tensor's key in the header.
  std::string name;
  /// The dtype as written in the header ("F32", "BF16", "F16", "I64", ...).
  std::string dtype;
  /// The torch dtype it maps to.
  torch::Dtype scalar_type = torch::kFloat32;
  /// Row-major shape; empty for a scalar.
  std::vector<int64_t> shape;
  /// data_offsets [begin, end): byte offsets relative to the byte buffer that follows the header.
  uint64_t begin = 0;
  uint64_t end = 0;
};

/// The header names the format defines, with the torch dtype each maps to and its size in bytes: BOOL, U8, I8,
/// I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2. Any other name is an error.
/// Returns false (and leaves the outputs alone) for a name that is not one of these.
bool dtype_from_name(const std::string& name, torch::Dtype* dtype, int64_t* element_size);

/// The header name of a torch dtype ("F32" for torch::kFloat32); an error for a dtype the format cannot store.
std::string dtype_name(torch::Dtype dtype);

/// A safetensors file whose header has been read and validated; tensors are read on request.
///
/// Layout (the format's specification): 8 bytes N, an unsigned little-endian 64-bit integer; N bytes of UTF-8
/// JSON that starts with '{' and may be padded at the end with spaces; then the byte buffer. The JSON maps each
/// tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets relative to the byte buffer, plus an
/// optional "__metadata__" object of string values. Opening checks, and rejects with an error that names the
/// file and the problem:
/// - a file shorter than 8 bytes, N larger than the rest of the file or than 100,000,000 (the reference
///   implementation's limit), a header that is not valid UTF-8 JSON, does not start with '{', is not an
///   object, or repeats a key;
/// - an entry that is not an object with exactly dtype, shape and data_offsets; an unknown dtype; a shape that
///   is not a list of non-negative integers or whose element count overflows; data_offsets that are not two
///   non-negative integers with begin <= end, or whose end lies past the end of the file;
/// - end - begin different from (number of elements) x (dtype size);
/// - tensors that overlap, or a byte buffer with holes or trailing bytes not covered by any tensor (the
///   specification requires the buffer to be entirely indexed);
/// - __metadata__ that is neither null nor an object of strings.
///
/// A File is cheap to copy (it holds the path and the parsed header, not the data). Reading checks again that
/// the bytes are there, so a file truncated after opening gives an error, never garbage.
///
/// Example:
/// ```
/// prefopt::safetensors::File file("model.safetensors");
/// for (const auto& entry : file.entries()) std::cout << entry.name << " " << entry.dtype << "\n";
/// torch::Tensor w = file.load("lm_head.weight");  // CPU, contiguous, the file's dtype and shape
/// ```
class File {
 public:
  /// Opens path and validates its header (see above). Raises c10::Error naming the path and the problem.
  explicit File(std::string path);

  const std::string& path() const { return path_; }
  /// The tensors, ordered by their offset in the byte buffer.
  const std::vector<TensorEntry>& entries() const { return entries_; }
  /// The "__metadata__" map (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Size in bytes of the file when it was opened, and the absolute offset of the byte buffer (8 + N).
  uint64_t file_size() const { return file_size_; }
  uint64_t data_start() const { return data_start_; }

  bool contains(const std::string& name) const;
  /// The entry named name; an error naming the file and the tensor when there is none.
  const TensorEntry& entry(const std::string& name) const;
  /// Reads one tensor: a new contiguous CPU tensor of the file's dtype and shape.
  torch::Tensor load(const std::string& name) const;
  /// Reads every tensor.
  std::map<std::string, torch::Tensor> load_all() const;

 private:
  std::string path_;
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t file_size_ = 0;
  uint64_t data_start_ = 0;
};

/// Every tensor of a safetensors file (File(path).load_all()).
std::map<std::string, torch::Tensor> load_file(const std::string& path);

/// Writes tensors, in the order given, to a safetensors file: the header lists them with contiguous
/// data_offsets and is padded with spaces to a multiple of 8 bytes, as the reference writer does. Tensors on
/// another device are copied to the CPU; non-contiguous ones are made contiguous. Names must be unique,
/// non-empty and not "__metadata__"; dtypes must be ones the format stores (see dtype_name).
///
/// The file is written to "<path>.tmp" and renamed over path only when complete, so an error or a crash never
/// leaves a partial file under path.
///
/// Example:
/// ```
/// prefopt::safetensors::save_file("out.safetensors", {{"w", torch::randn({3, 4})}}, {{"format", "pt"}});
/// ```
void save_file(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
               const std::map<std::string, std::string>& metadata = {});

}  // namespace prefopt::model::safetensors

namespace prefopt {
using namespace model;  // prefopt::safetensors as before (see llama_config.h)
}  // namespace prefopt
