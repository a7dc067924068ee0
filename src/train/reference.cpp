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

namespace {

// Data parallel: rank r scores examples r, r + world, ... (the last wrapping to the start so every rank scores as
// many), and the ranks' shares are gathered into the whole table, identical on every rank.
torch::Tensor sharded_table(const BatchScorer& scorer, LlamaForCausalLM& model, const Dataset& data,
                            int64_t batch_size, ProcessGroup& group) {
  const int64_t n = data.size(), world = group.size();
  const int64_t per_rank = (n + world - 1) / world;
  std::vector<int64_t> rows;
  for (int64_t j = 0; j < per_rank; ++j) rows.push_back((group.rank() + j * world) % n);
  const torch::Tensor share = scorer.reference_table(model, data, batch_size, rows);
  // [world, per_rank, C]: rank r's j-th row is example j * world + r.
  const torch::Tensor gathered = group.all_gather(share.to(group.device())).cpu();
  return gathered.transpose(0, 1).reshape({per_rank * world, share.size(1)}).slice(0, 0, n).contiguous();
}

// Whether rank 0 found the table in its cache file; if so, every rank receives it.
bool shared_from_rank0(torch::Tensor& table, ProcessGroup& group) {
  torch::Tensor shape = table.defined() ? torch::tensor({int64_t{1}, table.size(0), table.size(1)}, torch::kLong)
                                        : torch::zeros({3}, torch::kLong);
  std::vector<torch::Tensor> one{shape.to(group.device())};
  group.broadcast(one, 0);
  shape = one[0].cpu();
  if (shape[0].item<int64_t>() == 0) return false;
  std::vector<torch::Tensor> values{
      table.defined() ? table.to(group.device(), torch::kFloat32)
                      : torch::empty({shape[1].item<int64_t>(), shape[2].item<int64_t>()},
                                     torch::TensorOptions().dtype(torch::kFloat32).device(group.device()))};
  group.broadcast(values, 0);
  table = values[0].cpu();
  return true;
}

}  // namespace

void Reference::prepare_tables(const BatchScorer& scorer, const Dataset& train, const Dataset* eval,
                               const std::string& train_file, const std::string& eval_file, int64_t batch_size,
                               ProcessGroup* group) {
  if (!needed_ || mode_ != RefModelMode::Precomputed || !scorer.reference_tabulable()) return;
  for (const std::string& file : {train_file, eval_file}) {
    const size_t slash = file.find_last_of('/');
    if (slash != std::string::npos && slash > 0) make_directories(file.substr(0, slash));
  }
  const bool parallel = group != nullptr && group->size() > 1;
  auto prepare = [&](torch::Tensor& table, const Dataset& data, const std::string& file) {
    if (table.defined()) return;
    table = load_table(file, data);
    if (parallel) {
      if (shared_from_rank0(table, *group)) return;
      table = sharded_table(scorer, model_, data, batch_size, *group);
    } else {
      if (table.defined()) return;
      table = scorer.reference_table(model_, data, batch_size);
    }
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
