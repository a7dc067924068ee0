// Reading and writing Hugging Face checkpoint folders for the model layer's modules: config.json plus
// model.safetensors (or a sharded index), every name, shape and dtype checked before any data is read, files
// written to a temporary name and renamed. Private to src/model; it never builds a module.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <prefopt/model/llama_config.h>

namespace prefopt::model::io {

/// Copies the tensors of the checkpoint folder into `module`'s parameters, matched by name. Every parameter must be
/// there with its shape and a floating dtype; a checkpoint tensor that is no parameter is an error unless it is a
/// rotary inv_freq buffer or `ignorable(name)`. `architecture` names the module in errors.
void load_checkpoint_parameters(torch::nn::Module& module, const std::string& directory,
                                const std::string& architecture,
                                const std::function<bool(const std::string&)>& ignorable);

/// Writes `tensors` (name, tensor; in their dtype, or converted to `dtype` when given) as model.safetensors and
/// `config` (its dtype set from the tensors') as config.json into `directory`, creating it.
void save_checkpoint_folder(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, LlamaConfig config,
                            const std::string& directory, std::optional<torch::Dtype> dtype = std::nullopt);

/// "[2, 3]".
std::string shape_string(torch::IntArrayRef shape);

}  // namespace prefopt::model::io
