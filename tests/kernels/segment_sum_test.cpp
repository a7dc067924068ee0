// Tests of the segment_sum operator (through prefopt::segment_sum): per-segment sums against a plain float64 loop
// over the offsets, including empty and length-1 segments, every floating dtype, its gradient (each token gets
// its segment's), the Meta kernel's shape, and bad offsets named in the error. The CUDA test skips without a device.
#include <vector>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <prefopt/packed_scoring.h>

#include "support/expect_error.h"

namespace prefopt {
namespace {

std::vector<double> reference_sums(const std::vector<double>& values, const std::vector<int64_t>& offsets) {
  std::vector<double> out;
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    double s = 0;
    for (int64_t t = offsets[i]; t < offsets[i + 1]; ++t) s += values[static_cast<size_t>(t)];
    out.push_back(s);
  }
  return out;
}

std::vector<double> as_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

TEST(SegmentSum, MatchesAFloat64LoopWithEmptyAndLengthOneSegments) {
  torch::manual_seed(0);
  // Segments of 0, 1, 5, 0, 1, 700 and 0 tokens (the long one spans many vector widths and threads' grains).
  const std::vector<int64_t> offsets = {0, 0, 1, 6, 6, 7, 707, 707};
  const auto values = torch::randn({707}, torch::kFloat64) * 3;
  const auto expected = reference_sums(as_vector(values), offsets);
  const auto cu = torch::tensor(offsets, torch::kLong);
  for (const auto dtype : {torch::kFloat64, torch::kFloat32, torch::kBFloat16, torch::kHalf}) {
    const auto v = values.to(dtype);
    const auto out = segment_sum(v, cu);
    EXPECT_EQ(out.scalar_type(), dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
    // The reference sums the values as the kernel reads them (rounded to dtype).
    const auto want = reference_sums(as_vector(v), offsets);
    const auto got = as_vector(out);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << i;
    EXPECT_EQ(got[0], 0.0);
    EXPECT_EQ(got[3], 0.0);
    EXPECT_EQ(got[6], 0.0);
  }
  // int32 offsets give the same sums.
  const auto got32 = as_vector(segment_sum(values, cu.to(torch::kInt)));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(got32[i], expected[i], 1e-12 * (1 + std::abs(expected[i])));
}

TEST(SegmentSum, GradientIsEachTokensSegmentGradient) {
  const std::vector<int64_t> offsets = {0, 2, 2, 3, 6};
  const auto values = torch::randn({6}, torch::kFloat32).requires_grad_(true);
  const auto weights = torch::tensor({1.5, -2.0, 3.0, 0.25}, torch::kFloat32);
  (segment_sum(values, torch::tensor(offsets, torch::kLong)) * weights).sum().backward();
  const std::vector<double> expected = {1.5, 1.5, 3.0, 0.25, 0.25, 0.25};
  EXPECT_EQ(as_vector(values.grad()), expected);
  EXPECT_EQ(values.grad().scalar_type(), torch::kFloat32);
}

TEST(SegmentSum, MetaGivesTheShape) {
  const auto out = segment_sum(torch::empty({9}, torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kMeta)),
                               torch::empty({4}, torch::TensorOptions().dtype(torch::kLong).device(torch::kMeta)));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({3}));
  EXPECT_EQ(out.scalar_type(), torch::kFloat32);
}

TEST(SegmentSum, BadOffsetsAreNamed) {
  using testing::expect_error;
  const auto v = torch::ones({5});
  expect_error([&] { segment_sum(v, torch::tensor({1, 5}, torch::kLong)); }, "cu_seqlens[0] must be 0, got 1");
  expect_error([&] { segment_sum(v, torch::tensor({0, 3, 2, 5}, torch::kLong)); },
               "cu_seqlens must be non-decreasing: cu_seqlens[2] = 2 < cu_seqlens[1] = 3");
  expect_error([&] { segment_sum(v, torch::tensor({0, 4}, torch::kLong)); },
               "cu_seqlens must end at S = 5 (the number of values), got 4");
  expect_error([&] { segment_sum(v, torch::tensor({0.0, 5.0})); }, "cu_seqlens must be int64 or int32");
  expect_error([&] { segment_sum(torch::ones({2, 3}), torch::tensor({0, 6}, torch::kLong)); },
               "values must have shape [S]");
  expect_error([&] { segment_sum(torch::ones({5}, torch::kLong), torch::tensor({0, 5}, torch::kLong)); },
               "values must be a floating tensor");
}

TEST(SegmentSumCuda, MatchesTheCpuKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(1);
  const std::vector<int64_t> offsets = {0, 0, 1, 300, 300, 5000};
  const auto cu = torch::tensor(offsets, torch::kLong);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat64}) {
    const auto v = torch::randn({5000}).to(dtype);
    const auto cpu = segment_sum(v, cu);
    const auto gpu = segment_sum(v.cuda(), cu.cuda()).cpu();
    EXPECT_TRUE(torch::allclose(gpu, cpu, 1e-5, 1e-4)) << dtype;
    const auto g = v.cuda().to(torch::kFloat32).requires_grad_(true);
    segment_sum(g, cu.cuda()).sum().backward();
    EXPECT_TRUE(torch::equal(g.grad().cpu(), torch::ones({5000}))) << dtype;
  }
}

}  // namespace prefopt
