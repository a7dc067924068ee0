// Activation checkpointing of one decoder layer: the forward runs the layer without recording its graph and keeps
// only the layer's input; the backward reruns it, with the forward's autocast and random-number state, to get the
// gradients of that input and of the layer's trainable parameters. Private to src/model; it never changes the
// layer's math and never keeps a tensor beyond the backward.
#pragma once

#include <torch/types.h>

#include <prefopt/model/llama.h>

namespace prefopt::model::detail {

/// layer.forward(x, cos, sin, mask, packed) with its activations recomputed in the backward. `layer` must outlive
/// the backward; `packed` need not (its offsets and window are kept). Arguments as LlamaDecoderLayerImpl::forward
/// (no cache).
torch::Tensor checkpointed_layer(LlamaDecoderLayerImpl& layer, const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin, const torch::Tensor& mask,
                                 const PackedAttention* packed = nullptr);

}  // namespace prefopt::model::detail
