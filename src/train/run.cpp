// Running a prefopt-train configuration: model, tokenizer and datasets from a RunConfig, then the Trainer. Never
// parses a config file.
#include <prefopt/train/run.h>

#include <c10/util/Exception.h>

#include <prefopt/data/tokenizer.h>
#include <prefopt/train/optim.h>

namespace prefopt::train {

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
  data::ByteTokenizer tokenizer;
  TORCH_CHECK(model->config().vocab_size() >= tokenizer.vocab_size(), "model vocab_size ",
              model->config().vocab_size(), " is smaller than the byte tokenizer's ", tokenizer.vocab_size());
  auto train = Dataset::read(config.train_file, config.format, tokenizer, config.encode);
  std::optional<Dataset> eval;
  if (!config.eval_file.empty()) eval = Dataset::read(config.eval_file, config.format, tokenizer, config.encode);
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
  Trainer trainer(config.trainer, model, std::move(train), std::move(eval));
  return trainer.train();
}

}  // namespace prefopt::train
