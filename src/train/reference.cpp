// The reference model and the precomputed reference tables: cloning and freezing the initial policy, and loading
// or computing-and-writing the cached tables keyed by the data's fingerprint. Never trains.
#include <prefopt/train/reference.h>

#include <c10/util/Exception.h>
#include <torch/serialize.h>

#include <prefopt/train/checkpoint.h>

#include "../common/files.h"

namespace prefopt::train {

std::string to_string(RefModelMode mode) { return mode == RefModelMode::Copy ? "copy" : "precomputed"; }

RefModelMode ref_model_mode_from_string(std::string_view name) {
  if (name == "copy") return RefModelMode::Copy;
  if (name == "precomputed") return RefModelMode::Precomputed;
  TORCH_CHECK(false, "unknown ref_model \"", std::string(name), "\"; valid values: \"copy\", \"precomputed\"");
}

Reference::Reference(RefModelMode mode, bool needed, const LlamaForCausalLM& policy, torch::Device device,
                     bool share_policy)
    : mode_(mode), needed_(needed) {
  if (!needed_) return;
  if (share_policy) {
    // Scoring turns the adapters off around every reference forward (AdaptersDisabled).
    model_ = policy;
    shares_policy_ = true;
    return;
  }
  model_ = std::dynamic_pointer_cast<LlamaForCausalLMImpl>(policy->clone(device));
  TORCH_CHECK(model_, "Trainer: cloning the reference model failed");
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
  model_->eval();
}

namespace {

// The table in `path` when it was computed on exactly `data`, else undefined.
torch::Tensor load_table(const std::string& path, const Dataset& data) {
  if (path.empty() || !files::exists(path)) return {};
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  torch::Tensor values, key;
  archive.read("ref_logps", values);
  archive.read("fingerprint", key);
  if (key.numel() != 1 || key.item<int64_t>() != data.fingerprint() || values.dim() != 2 ||
      values.size(0) != data.size()) {
    return {};
  }
  return values;
}

void save_table(const std::string& path, const torch::Tensor& values, const Dataset& data) {
  if (path.empty()) return;
  torch::serialize::OutputArchive archive;
  archive.write("ref_logps", values);
  archive.write("fingerprint", torch::tensor(data.fingerprint(), torch::kLong));
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  const std::string error = files::publish_file(tmp, path);
  TORCH_CHECK(error.empty(), "cannot rename \"", tmp, "\" to \"", path, "\": ", error);
}

}  // namespace

void Reference::prepare_tables(const BatchScorer& scorer, const Dataset& train, const Dataset* eval,
                               const std::string& train_file, const std::string& eval_file, int64_t batch_size) {
  if (!needed_ || mode_ != RefModelMode::Precomputed || !scorer.reference_tabulable()) return;
  for (const std::string& file : {train_file, eval_file}) {
    const size_t slash = file.find_last_of('/');
    if (slash != std::string::npos && slash > 0) make_directories(file.substr(0, slash));
  }
  auto prepare = [&](torch::Tensor& table, const Dataset& data, const std::string& file) {
    if (table.defined()) return;
    table = load_table(file, data);
    if (table.defined()) return;
    table = scorer.reference_table(model_, data, batch_size);
    save_table(file, table, data);
  };
  prepare(train_table_, train, train_file);
  if (eval) prepare(eval_table_, *eval, eval_file);
}

std::pair<std::string, std::string> Reference::cache_files(const std::string& cache, const std::string& output_dir) {
  std::string base = cache;
  if (base.empty()) {
    if (output_dir.empty()) return {"", ""};
    base = files::join(output_dir, "ref_logps.pt");
  }
  const size_t dot = base.rfind(".pt");
  const std::string eval =
      dot != std::string::npos && dot + 3 == base.size() ? base.substr(0, dot) + "_eval.pt" : base + "_eval";
  return {base, eval};
}

}  // namespace prefopt::train
