// Running a prefopt-train configuration: model, tokenizer and datasets from a RunConfig, then the Trainer. Never
// parses a config file.
#include <prefopt/train/run.h>

#include <prefopt/train/distributed.h>

#include <c10/util/Exception.h>

#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include <prefopt/data/hf_tokenizer.h>
#include <prefopt/data/tokenizer.h>
#include <prefopt/train/optim.h>

#include "../common/files.h"

namespace prefopt::train {
namespace {

std::unique_ptr<data::Tokenizer> make_tokenizer(const RunConfig& config) {
  if (config.tokenizer == "hf") {
    return std::make_unique<data::HFTokenizer>(data::HFTokenizer::from_pretrained(config.tokenizer_path));
  }
  return std::make_unique<data::ByteTokenizer>();
}

// The ids the tokenizer produces (its vocabulary, BOS, EOS, pad) must all be rows of the model's embedding.
void check_tokenizer_fits(const data::Tokenizer& tokenizer, const RunConfig& config, int64_t model_vocab) {
  const std::string name = config.tokenizer == "hf" ? "the tokenizer of " + config.tokenizer_path : "the byte tokenizer";
  TORCH_CHECK(tokenizer.vocab_size() <= model_vocab, name, " has ", tokenizer.vocab_size(),
              " ids but the model's vocab_size is ", model_vocab,
              ": its ids would index past the embedding (tokenizer and model do not belong together)");
  for (const auto& [what, id] : {std::make_pair("bos", tokenizer.bos_id()), std::make_pair("eos", tokenizer.eos_id()),
                                 std::make_pair("pad", std::optional<int64_t>(tokenizer.pad_id()))}) {
    TORCH_CHECK(!id || (*id >= 0 && *id < model_vocab), name, "'s ", what, " id ", *id,
                " is outside the model's vocabulary [0, ", model_vocab, ")");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// What a Hugging Face model folder carries beside config.json and the weights: the tokenizer's files and
// generation_config.json (the source checkpoint's, else one naming the tokenizer's BOS / EOS / pad).
std::function<void(const std::string&)> model_files_writer(const RunConfig& config, const data::Tokenizer& tokenizer) {
  const auto* hf = dynamic_cast<const data::HFTokenizer*>(&tokenizer);
  std::string generation_config;
  const std::string source = config.model_path.empty() ? "" : files::join(config.model_path, "generation_config.json");
  if (!source.empty() && files::exists(source)) {
    generation_config = read_file(source);
  } else if (hf != nullptr) {
    nlohmann::json g = {{"_from_model_config", true}};
    if (hf->bos_id()) g["bos_token_id"] = *hf->bos_id();
    if (hf->eos_id()) g["eos_token_id"] = *hf->eos_id();
    g["pad_token_id"] = hf->pad_id();
    generation_config = g.dump(2) + "\n";
  }
  if (hf == nullptr && generation_config.empty()) return nullptr;
  std::shared_ptr<const data::HFTokenizer> saved = hf ? std::make_shared<data::HFTokenizer>(*hf) : nullptr;
  return [saved, generation_config](const std::string& folder) {
    if (saved) saved->save_pretrained(folder);
    if (!generation_config.empty()) {
      const std::string path = files::join(folder, "generation_config.json");
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << generation_config;
      out.flush();
      TORCH_CHECK(out.good(), "writing ", path, " failed");
    }
  };
}

struct PreparedData {
  std::unique_ptr<data::Tokenizer> tokenizer;
  Dataset train;
  std::optional<Dataset> eval;
};

PreparedData prepare_data(const RunConfig& config, int64_t model_vocab) {
  PreparedData out{make_tokenizer(config), {}, std::nullopt};
  const data::Tokenizer& tokenizer = *out.tokenizer;
  check_tokenizer_fits(tokenizer, config, model_vocab);
  // Pre-tokenized ids are checked against the model's vocabulary, which may be larger than the tokenizer's.
  data::EncodeOptions encode = config.encode;
  encode.vocab_size(model_vocab);
  out.train = Dataset::read(config.train_file, config.format, tokenizer, encode);
  if (!config.eval_file.empty()) out.eval = Dataset::read(config.eval_file, config.format, tokenizer, encode);
  return out;
}

}  // namespace

void write_encoded_dataset(const RunConfig& config, const std::string& path) {
  const LlamaConfig model_config = config.model_config
                                       ? *config.model_config
                                       : LlamaConfig::from_json_file(files::join(config.model_path, "config.json"));
  const PreparedData prepared = prepare_data(config, model_config.vocab_size());
  const Dataset& d = prepared.train;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(out.good(), "write_encoded_dataset: cannot write ", tmp);
    using nlohmann::json;
    const auto line = [&](const json& j) { out << j.dump() << '\n'; };
    switch (d.format) {
      case DataFormat::Pairwise:
        for (const auto& e : d.pairs) {
          json j = {{"prompt_ids", e.prompt}, {"chosen_ids", e.chosen}, {"rejected_ids", e.rejected}};
          if (e.margin) j["margin"] = *e.margin;
          if (e.magnitude) j["magnitude"] = *e.magnitude;
          line(j);
        }
        break;
      case DataFormat::Ranked:
        for (const auto& e : d.lists) {
          line({{"prompt_ids", e.prompt},
                {"responses_ids", e.responses},
                {e.label_kind == data::ListLabelKind::Scores ? "scores" : "ranks", e.labels}});
        }
        break;
      case DataFormat::Unpaired:
        for (const auto& e : d.unpaired) {
          line({{"prompt_ids", e.prompt}, {"completion_ids", e.completion}, {"label", e.label}});
        }
        break;
      case DataFormat::Completions:
        for (const auto& e : d.completions) line({{"prompt_ids", e.prompt}, {"completion_ids", e.completion}});
        break;
      case DataFormat::Joint:
        for (const auto& e : d.joint) {
          line({{"chosen_prompt_ids", e.chosen_prompt},
                {"chosen_ids", e.chosen},
                {"rejected_prompt_ids", e.rejected_prompt},
                {"rejected_ids", e.rejected}});
        }
        break;
    }
    out.flush();
    TORCH_CHECK(out.good(), "write_encoded_dataset: writing ", tmp, " failed");
  }
  const std::string error = files::publish_file(tmp, path);
  TORCH_CHECK(error.empty(), "write_encoded_dataset: cannot rename ", tmp, " to ", path, ": ", error);
}

TrainResult run_training(const RunConfig& config) {
  // A model built from scratch draws its weights from torch's generator: seed it first so the run is reproducible.
  seed_torch(config.trainer.seed());
  LlamaForCausalLM model{nullptr};
  if (config.model_config) {
    model = LlamaForCausalLM(*config.model_config);
    model->to(config.model_dtype);
  } else {
    model = load_llama(config.model_path, LlamaLoadOptions().dtype(config.model_dtype));
  }
  PreparedData prepared = prepare_data(config, model->config().vocab_size());
  const data::Tokenizer& tokenizer = *prepared.tokenizer;
  Dataset& train = prepared.train;
  std::optional<Dataset>& eval = prepared.eval;
  // SPO trains on graded variants of the chosen responses, made from their text here, where the tokenizer is.
  // TPO scores steps, cut from the responses' text here too.
  const ScoringNeeds needs = make_objective(config.trainer.loss(), config.trainer.loss_options())->needs();
  if (needs.degree_variants > 0) {
    add_degree_variants(train, tokenizer, needs.degree_variants);
    if (eval) add_degree_variants(*eval, tokenizer, needs.degree_variants);
  }
  if (needs.steps) {
    add_step_ids(train, tokenizer, needs.step_delimiter);
    if (eval) add_step_ids(*eval, tokenizer, needs.step_delimiter);
  }
  // Under torchrun (WORLD_SIZE > 1) this process is one rank of a data-parallel job; on CUDA each rank trains on
  // the device of its LOCAL_RANK.
  const DistributedEnv env = DistributedEnv::from_environment();
  TrainerConfig trainer_config = config.trainer;
  if (env.distributed() && trainer_config.device().is_cuda()) {
    trainer_config.device(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank)));
  }
  Trainer trainer(trainer_config, model, std::move(train), std::move(eval));
  if (auto writer = model_files_writer(config, tokenizer)) trainer.set_model_files_writer(std::move(writer));
  if (env.distributed()) trainer.set_process_group(std::make_shared<ProcessGroup>(env, trainer_config.device()));
  return trainer.train();
}

}  // namespace prefopt::train
