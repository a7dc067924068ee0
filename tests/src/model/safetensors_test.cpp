// Tests of the safetensors reader and writer: a round trip of every stored dtype (scalars, empty and
// non-contiguous tensors, metadata), and one malformed file per check of the specification, each with the
// message the user reads.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include <prefopt/model/safetensors.h>
#include "support/expect_error.h"
#include "support/temp_tree.h"

namespace prefopt {
namespace {

using prefopt::testing::expect_error;
using prefopt::testing::TempTree;
using safetensors::File;

// A fresh folder per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes an 8-byte little-endian length (header.size() unless given), the header and data bytes.
  std::string raw(const std::string& header, uint64_t data_bytes, int64_t length = -1) {
    const std::string path = dir_ / "raw.safetensors";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    const uint64_t n = length < 0 ? header.size() : static_cast<uint64_t>(length);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header;
    for (uint64_t i = 0; i < data_bytes; ++i) out.put(static_cast<char>(i));
    return path;
  }

  TempTree dir_;
};

TEST_F(SafetensorsTest, RoundTripEveryDtypeShapeAndMetadata) {
  torch::manual_seed(0);
  const torch::Tensor f32 = torch::randn({3, 5});
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", f32},
      {"bf16", torch::randn({4, 2}).to(torch::kBFloat16)},
      {"f16", torch::randn({7}).to(torch::kHalf)},
      {"f64", torch::randn({2, 2, 2}, torch::kDouble)},
      {"i64", torch::arange(-3, 9, torch::kLong).view({3, 4})},
      {"i32", torch::tensor({1, -2, 3}, torch::kInt)},
      {"u8", torch::tensor({0, 200, 255}, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 3})},
      {"transposed", f32.t()},  // not contiguous
  };
  const std::string path = dir_ / "round.safetensors";
  safetensors::save_file(path, tensors, {{"format", "pt"}, {"note", "x"}});
  EXPECT_FALSE(prefopt::testing::path_exists(path + ".tmp"));

  const File file(path);
  EXPECT_EQ(file.data_start() % 8, 0u) << "the header is padded to a multiple of 8 bytes";
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "x");
  ASSERT_EQ(file.entries().size(), tensors.size());
  EXPECT_EQ(file.entry("bf16").dtype, "BF16");
  EXPECT_EQ(file.entry("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(file.entry("empty").begin, file.entry("empty").end);
  for (const auto& [name, expected] : tensors) {
    const torch::Tensor got = file.load(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_TRUE(torch::equal(got, expected)) << name;
  }
  const auto all = safetensors::load_file(path);
  EXPECT_EQ(all.size(), tensors.size());
  EXPECT_TRUE(torch::equal(all.at("i64"), tensors[4].second));
}

TEST_F(SafetensorsTest, HandWrittenFileWithPaddingAndUnorderedKeys) {
  // Keys out of offset order, and the header padded with spaces, as the specification allows.
  const std::string header = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                             R"("a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}   )";
  const File file(raw(header, 6));
  ASSERT_EQ(file.entries().size(), 2u);
  EXPECT_EQ(file.entries()[0].name, "a");  // ordered by offset
  EXPECT_TRUE(torch::equal(file.load("a"), torch::tensor({0x0100, 0x0302}, torch::kShort)));
  EXPECT_TRUE(torch::equal(file.load("b"), torch::tensor({4, 5}, torch::kByte)));
  EXPECT_TRUE(file.contains("b"));
  EXPECT_FALSE(file.contains("c"));
  expect_error([&] { file.load("c"); }, "has no tensor named 'c'");
  // A null __metadata__ means none, as in the reference implementation.
  EXPECT_TRUE(File(raw(R"({"__metadata__":null})", 0)).metadata().empty());
}

TEST_F(SafetensorsTest, MissingFile) {
  expect_error([&] { File(dir_ / "nope.safetensors"); }, "nope.safetensors' does not exist");
  expect_error([&] { File(dir_.path()); }, "is not a regular file");
}

TEST_F(SafetensorsTest, TruncatedLength) {
  const std::string path = dir_ / "short.safetensors";
  std::ofstream(path, std::ios::binary) << "abcde";
  expect_error([&] { File{path}; }, "short.safetensors' is truncated: 5 bytes, shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string path = raw("{}", 0, 1000);
  expect_error([&] { File{path}; }, "header length 1000 runs past the end of the file (10 bytes, so at most 2 bytes");
  // A huge length must not allocate: it is checked against the file size first.
  expect_error([&] { File(raw("{}", 0, int64_t{1} << 62)); }, "runs past the end of the file");
}

TEST_F(SafetensorsTest, HeaderLengthAboveLimit) {
  // A sparse file big enough to hold the header, so only the limit can reject it.
  const std::string path = raw("{}", 0, 150000000);
  prefopt::testing::resize_file(path, 8 + 150000000);
  expect_error([&] { File{path}; }, "header length 150000000 exceeds the limit of 100000000 bytes");
}

TEST_F(SafetensorsTest, TruncatedHeader) {
  // The length counts 40 bytes but the JSON inside them stops half way.
  std::string header = R"({"a":{"dtype":"F32","shape":[1],)";
  header.append(40 - header.size(), ' ');
  expect_error([&] { File(raw(header, 4)); }, "the header is not valid JSON");
}

TEST_F(SafetensorsTest, BadJson) {
  expect_error([&] { File(raw(R"({"a": nope})", 0)); }, "raw.safetensors': the header is not valid JSON");
  expect_error([&] { File(raw(R"([1, 2])", 0)); }, "the header must start with '{'");
  expect_error([&] { File(raw("{}\n\n", 0)); }, "followed only by space padding");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                              R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                              1)); },
               "the header repeats the key 'a'");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1)); },
               "the header repeats the key 'dtype'");
  expect_error([&] { File(raw("{\"\xff\":1}", 0)); }, "the header is not valid JSON");  // not UTF-8
}

TEST_F(SafetensorsTest, MalformedEntries) {
  expect_error([&] { File(raw(R"({"a":[1]})", 0)); }, "tensor 'a' must be an object with dtype, shape and data_offsets");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1]}})", 0)); }, "tensor 'a' has no data_offsets");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1)); },
               "tensor 'a' has the unknown field 'x'");
  expect_error([&] { File(raw(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", 1)); },
               "tensor 'a': dtype must be a string, got 7");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1)); },
               "tensor 'a': shape must be a list of non-negative integers, got [-1]");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", 1)); },
               "shape must be a list of non-negative integers");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1)); },
               "tensor 'a': data_offsets must be [begin, end], got [0]");
  expect_error([&] { File(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", 1)); },
               "tensor 'a': data_offsets must hold non-negative integers, got -1");
  expect_error([&] { File(raw(R"({"__metadata__":{"k":1}})", 0)); }, "__metadata__ value 'k' must be a string, got 1");
  expect_error([&] { File(raw(R"({"__metadata__":[]})", 0)); }, "__metadata__ must be an object of strings");
  expect_error([&] { File(raw(R"({"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1)); },
               "a tensor has an empty name");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expect_error([&] { File(raw(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16)); },
               "tensor 'w' has unknown dtype 'F128' (supported: BOOL, U8, I8");
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  expect_error([&] { File(raw(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)); },
               "tensor 'w': data_offsets [0, 16] run past the end of the file (the byte buffer after the header is 8 "
               "bytes)");
  expect_error([&] { File(raw(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[9,4]}})", 8)); },
               "tensor 'w': data_offsets [9, 4] has begin after end");
  // An end so large that begin + size arithmetic would wrap is still caught.
  expect_error([&] { File(raw(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})", 8)); },
               "run past the end of the file");
}

TEST_F(SafetensorsTest, OffsetsNotMatchingShapeAndDtype) {
  expect_error([&] { File(raw(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)); },
               "tensor 'w': data_offsets [0, 8] span 8 bytes, but shape [3] of F32 needs 12 bytes");
  expect_error([&] { File(raw(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 4)); },
               "span 4 bytes, but shape [2,2] of BF16 needs 8 bytes");
  expect_error([&] { File(raw(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)); },
               "has more elements than any file can hold");
}

TEST_F(SafetensorsTest, OverlappingHolesAndTrailingBytes) {
  expect_error([&] { File(raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12)); },
               "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  expect_error([&] { File(raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              12)); },
               "bytes [4, 8) of the byte buffer belong to no tensor");
  expect_error([&] { File(raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6)); },
               "bytes [4, 6) at the end of the byte buffer belong to no tensor");
}

TEST_F(SafetensorsTest, FileTruncatedAfterOpening) {
  const std::string path = dir_ / "t.safetensors";
  safetensors::save_file(path, {{"w", torch::ones({64})}});
  const File file(path);
  prefopt::testing::resize_file(path, prefopt::testing::file_size(path) - 10);
  expect_error([&] { file.load("w"); }, "changed size since it was opened");
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  const std::string path = dir_ / "w.safetensors";
  expect_error([&] { safetensors::save_file(path, {{"a", torch::ones({1})}, {"a", torch::ones({1})}}); },
               "the tensor name 'a' is given twice");
  expect_error([&] { safetensors::save_file(path, {{"__metadata__", torch::ones({1})}}); },
               "tensor names must be non-empty and not __metadata__");
  expect_error([&] { safetensors::save_file(path, {{"c", torch::ones({1}, torch::kComplexFloat)}}); },
               "cannot be stored");
  EXPECT_FALSE(prefopt::testing::path_exists(path));
  EXPECT_EQ(safetensors::dtype_name(torch::kBFloat16), "BF16");
  torch::Dtype dtype;
  int64_t size = 0;
  EXPECT_TRUE(safetensors::dtype_from_name("F16", &dtype, &size));
  EXPECT_EQ(dtype, torch::kHalf);
  EXPECT_EQ(size, 2);
  EXPECT_FALSE(safetensors::dtype_from_name("F4", &dtype, &size));
}

}  // namespace
}  // namespace prefopt
