// Activation checkpointing of a decoder layer as a custom autograd function (PyTorch's checkpoint, the
// non-reentrant kind in effect: the parameters' gradients are returned through the function's inputs, so a layer
// whose input needs no gradient, the first one of a LoRA model with frozen embeddings, still trains). Never changes
// the layer's math.
#include "layer_checkpoint.h"

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace prefopt::model::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The random state of the CPU generator and of the layer's device, so the recomputation draws what the forward
// drew (dropout inside the layer, a LoRA adapter's).
struct RandomState {
  torch::Tensor cpu, device;
  c10::Device where = c10::kCPU;

  static torch::Tensor get(c10::Device device) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  }
  static void set(c10::Device device, const torch::Tensor& state) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
  static RandomState capture(c10::Device where) {
    RandomState state;
    state.where = where;
    state.cpu = get(c10::kCPU);
    if (where.type() != c10::kCPU) state.device = get(where);
    return state;
  }
  void restore() const {
    set(c10::kCPU, cpu);
    if (device.defined()) set(where, device);
  }
};

// Sets the autocast state of one device type for a scope, then puts the previous one back.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType type, bool enabled, at::ScalarType dtype)
      : type_(type), was_enabled_(at::autocast::is_autocast_enabled(type)),
        was_dtype_(at::autocast::get_autocast_dtype(type)) {
    at::autocast::set_autocast_enabled(type_, enabled);
    at::autocast::set_autocast_dtype(type_, dtype);
  }
  ~AutocastScope() {
    at::autocast::set_autocast_enabled(type_, was_enabled_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool was_enabled_;
  at::ScalarType was_dtype_;
};

// The layer's own parameters and its adapters' (which are not module parameters), those that train.
std::vector<torch::Tensor> trainable_parameters(LlamaDecoderLayerImpl& layer) {
  std::vector<torch::Tensor> all = layer.parameters();
  for (const ProjectionUpdates* updates : {&layer.self_attn->updates, &layer.mlp->updates}) {
    if (!updates->enabled) continue;
    for (const auto& p : updates->parameters()) all.push_back(p);
  }
  std::vector<torch::Tensor> out;
  for (const auto& p : all) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // Runs without recording a graph (Function::apply turns gradients off for the forward).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const std::optional<torch::Tensor>& mask,
                               const std::optional<torch::Tensor>& cu_seqlens, int64_t window,
                               LlamaDecoderLayerImpl* layer, at::TensorList parameters) {
    const c10::DeviceType type = x.device().type();
    ctx->saved_data["layer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(layer));
    ctx->saved_data["x_requires_grad"] = x.requires_grad();
    ctx->saved_data["parameters"] = static_cast<int64_t>(parameters.size());
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(type);
    ctx->saved_data["autocast_dtype"] = at::autocast::get_autocast_dtype(type);
    const RandomState random = RandomState::capture(x.device());
    ctx->saved_data["rng_cpu"] = random.cpu;
    if (random.device.defined()) ctx->saved_data["rng_device"] = random.device;
    ctx->save_for_backward({x, cos, sin, mask.value_or(torch::Tensor()), cu_seqlens.value_or(torch::Tensor())});
    ctx->saved_data["window"] = window;
    const PackedAttention packed{cu_seqlens.value_or(torch::Tensor()), window};
    return layer->forward(x, cos, sin, mask.value_or(torch::Tensor()), nullptr, 0,
                          cu_seqlens.has_value() ? &packed : nullptr);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    auto* layer = reinterpret_cast<LlamaDecoderLayerImpl*>(static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    const bool x_requires_grad = ctx->saved_data["x_requires_grad"].toBool();
    const auto n_parameters = static_cast<size_t>(ctx->saved_data["parameters"].toInt());
    const std::vector<torch::Tensor> parameters = trainable_parameters(*layer);
    TORCH_CHECK(parameters.size() == n_parameters, "gradient checkpointing: the layer's trainable parameters changed "
                "between the forward (", n_parameters, ") and the backward (", parameters.size(), ")");

    RandomState random;
    random.where = x.device();
    random.cpu = ctx->saved_data["rng_cpu"].toTensor();
    if (ctx->saved_data.count("rng_device")) random.device = ctx->saved_data["rng_device"].toTensor();
    const RandomState now = RandomState::capture(x.device());

    const torch::Tensor input = x.detach().requires_grad_(x_requires_grad);
    torch::Tensor output;
    {
      at::AutoGradMode grad_on(true);
      AutocastScope autocast(x.device().type(), ctx->saved_data["autocast"].toBool(),
                             ctx->saved_data["autocast_dtype"].toScalarType());
      random.restore();
      const PackedAttention packed{saved[4], ctx->saved_data["window"].toInt()};
      output = layer->forward(input, saved[1], saved[2], saved[3], nullptr, 0, saved[4].defined() ? &packed : nullptr);
      now.restore();  // the caller's stream of random numbers continues as if nothing had been redrawn
    }
    std::vector<torch::Tensor> inputs;
    if (x_requires_grad) inputs.push_back(input);
    inputs.insert(inputs.end(), parameters.begin(), parameters.end());
    variable_list grads;
    if (!inputs.empty() && output.requires_grad()) {
      grads = torch::autograd::grad({output}, inputs, {grad_outputs[0]}, /*retain_graph=*/false,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    } else {
      grads.assign(inputs.size(), torch::Tensor());
    }
    // One slot per forward argument: x, cos, sin, mask, cu_seqlens, window, layer, then each parameter.
    variable_list out;
    out.push_back(x_requires_grad ? grads[0] : torch::Tensor());
    out.emplace_back();
    out.emplace_back();
    out.emplace_back();
    out.emplace_back();
    out.emplace_back();
    out.emplace_back();
    const size_t first = x_requires_grad ? 1 : 0;
    for (size_t i = 0; i < parameters.size(); ++i) out.push_back(grads[first + i]);
    return out;
  }
};

}  // namespace

torch::Tensor checkpointed_layer(LlamaDecoderLayerImpl& layer, const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin, const torch::Tensor& mask, const PackedAttention* packed) {
  const std::vector<torch::Tensor> parameters = trainable_parameters(layer);
  std::optional<torch::Tensor> optional_mask, optional_offsets;
  if (mask.defined()) optional_mask = mask;
  if (packed != nullptr) optional_offsets = packed->cu_seqlens;
  return CheckpointedLayer::apply(x, cos, sin, optional_mask, optional_offsets, packed ? packed->window : 0, &layer,
                                  at::TensorList(parameters));
}

}  // namespace prefopt::model::detail
