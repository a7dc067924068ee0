// Hugging Face checkpoint folders for the model layer: opening model.safetensors or the shards of its index (plain
// file names in the same folder only), loading parameters by name after checking every name, shape and dtype, and
// writing config.json and model.safetensors atomically. Never builds a module.
#include "checkpoint_io.h"

#include <fstream>
#include <map>
#include <sstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "../common/files.h"
#include <prefopt/model/safetensors.h>

namespace prefopt::model::io {
namespace {


// Where each tensor of a checkpoint folder lives: one model.safetensors, or the shards of an index.
struct Checkpoint {
  std::vector<safetensors::File> files;
  std::map<std::string, size_t> file_of;  // tensor name -> index into files
};

Checkpoint open_checkpoint(const std::string& directory) {
  const std::string single = files::join(directory, "model.safetensors");
  const std::string index_path = files::join(directory, "model.safetensors.index.json");
  Checkpoint checkpoint;
  if (files::exists(single)) {
    checkpoint.files.emplace_back(single);
    for (const auto& entry : checkpoint.files[0].entries()) checkpoint.file_of[entry.name] = 0;
    return checkpoint;
  }
  TORCH_CHECK(files::exists(index_path), "no model.safetensors or model.safetensors.index.json in '", directory,
              "' (only safetensors checkpoints are read; PyTorch .bin files are not)");
  const std::string& where = index_path;
  std::ifstream in(index_path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot open '", where, "'");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, where, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(index.is_object() && index.contains("weight_map") && index.at("weight_map").is_object(), where,
              ": expected an object with a weight_map object");
  std::map<std::string, size_t> shard_index;
  for (const auto& [name, shard] : index.at("weight_map").items()) {
    TORCH_CHECK(shard.is_string(), where, ": weight_map[\"", name, "\"] must be a file name, got ", shard.dump());
    const std::string file = shard.get<std::string>();
    // Shards are plain names in the same folder: nothing in an index may point outside it.
    TORCH_CHECK(!file.empty() && file != "." && file != ".." && file.find('/') == std::string::npos &&
                    file.find('\\') == std::string::npos,
                where, ": weight_map[\"", name, "\"] is '", file, "'; shards must be plain file names in the same folder");
    auto it = shard_index.find(file);
    if (it == shard_index.end()) {
      const std::string shard_path = files::join(directory, file);
      TORCH_CHECK(files::exists(shard_path), where, ": weight_map[\"", name, "\"] names the shard '", file,
                  "', which does not exist");
      checkpoint.files.emplace_back(shard_path);
      it = shard_index.emplace(file, checkpoint.files.size() - 1).first;
    }
    TORCH_CHECK(checkpoint.files[it->second].contains(name), where, ": weight_map puts tensor '", name,
                "' in shard '", file, "', which has no such tensor");
    checkpoint.file_of[name] = it->second;
  }
  return checkpoint;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string shape_string(torch::IntArrayRef shape) {
  std::ostringstream out;
  out << shape;
  return out.str();
}

void load_checkpoint_parameters(torch::nn::Module& model, const std::string& directory, const std::string& architecture,
                                const std::function<bool(const std::string&)>& ignorable) {
  const Checkpoint checkpoint = open_checkpoint(directory);
  const auto parameters = model.named_parameters(/*recurse=*/true);

  // Check every name, shape and dtype before reading any data.
  for (const auto& [name, file_index] : checkpoint.file_of) {
    if (parameters.contains(name)) continue;
    if (ends_with(name, "rotary_emb.inv_freq") || ignorable(name)) continue;
    TORCH_CHECK(false, "checkpoint tensor '", name, "' in '", checkpoint.files[file_index].path(),
                "' is not a parameter of this ", architecture,
                " (check config.json: architecture, tie_word_embeddings, num_hidden_layers)");
  }
  for (const auto& item : parameters) {
    const std::string& name = item.key();
    const auto found = checkpoint.file_of.find(name);
    TORCH_CHECK(found != checkpoint.file_of.end(), "the checkpoint in '", directory, "' has no tensor '", name,
                "' (a parameter of ", architecture, " with shape ",
                shape_string(item.value().sizes()), ")");
    const safetensors::File& file = checkpoint.files[found->second];
    const safetensors::TensorEntry& entry = file.entry(name);
    TORCH_CHECK(entry.shape == item.value().sizes().vec(), "tensor '", name, "' in '", file.path(), "' has shape ",
                shape_string(entry.shape), ", but the model built from config.json expects ",
                shape_string(item.value().sizes()));
    const auto t = entry.scalar_type;
    TORCH_CHECK(t == torch::kFloat || t == torch::kBFloat16 || t == torch::kHalf || t == torch::kDouble, "tensor '",
                name, "' in '", file.path(), "' has dtype ", entry.dtype, "; weights must be F32, BF16, F16 or F64");
  }
  torch::NoGradGuard no_grad;
  for (auto& item : parameters) {
    const safetensors::File& file = checkpoint.files[checkpoint.file_of.at(item.key())];
    item.value().copy_(file.load(item.key()));
  }
}

void save_checkpoint_folder(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, LlamaConfig config,
                            const std::string& directory, std::optional<torch::Dtype> dtype_override) {
  const std::string error = files::make_directories(directory);
  TORCH_CHECK(error.empty(), "cannot create the folder '", directory, "': ", error);
  std::vector<std::pair<std::string, torch::Tensor>> detached;
  std::string dtype;
  for (const auto& [name, value] : tensors) {
    detached.emplace_back(name, dtype_override ? value.detach().to(*dtype_override) : value.detach());
    const auto t = detached.back().second.scalar_type();
    dtype = t == torch::kBFloat16 ? "bfloat16" : t == torch::kHalf ? "float16" : t == torch::kDouble ? "float64" : "float32";
  }
  config.torch_dtype(dtype);
  safetensors::save_file(files::join(directory, "model.safetensors"), detached, {{"format", "pt"}});
  const std::string written = files::write_text_atomically(files::join(directory, "config.json"),
                                                           config.to_json_string());
  TORCH_CHECK(written.empty(), written);
}

}  // namespace prefopt::model::io
