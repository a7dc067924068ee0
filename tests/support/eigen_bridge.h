// Copies tensors into Eigen's float64 containers, so the tests' references are written in plain double
// arithmetic that never goes through the library (or ATen) under test.
#pragma once

#include <vector>

#include <Eigen/Dense>
#include <torch/types.h>

namespace prefopt::testing {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline RowMatrix to_matrix(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kDouble).contiguous().cpu();
  return Eigen::Map<const RowMatrix>(d.data_ptr<double>(), d.size(0), d.size(1));
}

inline Eigen::VectorXd to_vector(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kDouble).contiguous().cpu().reshape({-1});
  return Eigen::Map<const Eigen::VectorXd>(d.data_ptr<double>(), d.numel());
}

inline std::vector<int64_t> to_labels(const torch::Tensor& t) {
  const torch::Tensor d = t.to(torch::kLong).contiguous().cpu().reshape({-1});
  return {d.data_ptr<int64_t>(), d.data_ptr<int64_t>() + d.numel()};
}

inline double max_abs_diff(const Eigen::VectorXd& a, const torch::Tensor& b) {
  return (a - to_vector(b)).cwiseAbs().maxCoeff();
}

}  // namespace prefopt::testing
