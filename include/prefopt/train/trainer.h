// The Trainer: fine-tunes a LlamaForCausalLM with any registered loss on pairs, ranked lists, unpaired examples or
// completions: the step loop (accumulation, clipping, AdamW on the warm-up + cosine schedule), evaluation, logging
// and atomic, exactly resumable checkpoints. It delegates scoring to batch_scoring.h, the reference to
// reference.h and the run's position to trainer_state.h; it never changes the math of the layers below, never
// reads a config file (train/run.h does) and never spawns threads of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include <prefopt/model/llama.h>
#include <prefopt/model/lora.h>
#include <prefopt/train/dataset.h>
#include <prefopt/train/distributed.h>
#include <prefopt/train/logging.h>
#include <prefopt/train/loss_registry.h>
#include <prefopt/train/mixed_precision.h>
#include <prefopt/train/reference.h>

namespace prefopt::train {

/// Everything a Trainer needs besides the model and the data. Names follow TRL / transformers'
/// TrainingArguments where one exists. Steps are optimizer steps (one per gradient_accumulation_steps
/// micro-batches).
///
/// Example:
/// ```
/// auto config = prefopt::train::TrainerConfig()
///                   .loss("dpo").loss_options({{"beta", 0.1}, {"loss_type", std::string("ipo")}})
///                   .learning_rate(5e-5).batch_size(4).gradient_accumulation_steps(2)
///                   .max_steps(100).warmup_ratio(0.1).output_dir("runs/dpo");
/// ```
struct TrainerConfig {
  /// The loss, by registry name (loss_registry.h; docs/training.md lists every loss and option), and its options
  /// by name (errors list the valid ones).
  TORCH_ARG(std::string, loss) = "dpo";
  TORCH_ARG(LossOptions, loss_options) = {};
  /// Reference for losses that need one; ignored by reference-free losses.
  TORCH_ARG(RefModelMode, ref_model) = RefModelMode::Copy;
  /// The precomputed reference log-probs file; empty: "<output_dir>/ref_logps.pt" (required then).
  TORCH_ARG(std::string, ref_logps_cache) = "";

  /// AdamW (decoupled weight decay, applied to every parameter).
  TORCH_ARG(double, learning_rate) = 1e-6;
  TORCH_ARG(double, adam_beta1) = 0.9;
  TORCH_ARG(double, adam_beta2) = 0.999;
  TORCH_ARG(double, adam_epsilon) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
  /// Clip the global L2 norm of the gradients to this before each step; 0 disables clipping.
  TORCH_ARG(double, max_grad_norm) = 1.0;

  /// Schedule (schedule.h): linear warm-up from 0 over warmup_steps (or, when warmup_steps is 0,
  /// ceil(warmup_ratio * total steps)), then "cosine" decay to min_lr_ratio * learning_rate at the last step,
  /// or "constant".
  TORCH_ARG(std::string, lr_scheduler_type) = "cosine";
  TORCH_ARG(int64_t, warmup_steps) = 0;
  TORCH_ARG(double, warmup_ratio) = 0.0;
  TORCH_ARG(double, min_lr_ratio) = 0.0;

  /// Examples per micro-batch (pairs, lists, unpaired examples or completions).
  TORCH_ARG(int64_t, batch_size) = 4;
  TORCH_ARG(int64_t, eval_batch_size) = 8;
  /// Micro-batches whose gradients add up to one optimizer step; the loss of each is divided by this.
  TORCH_ARG(int64_t, gradient_accumulation_steps) = 1;
  /// Epochs over the training data; max_steps > 0 overrides it. An epoch's last incomplete micro-batch is kept
  /// (for KTO, whose KL baseline mismatches pairs within a micro-batch, a last micro-batch of one example joins
  /// the one before); an optimizer step never spans two epochs (a short last step accumulates fewer micro-batches).
  TORCH_ARG(int64_t, num_train_epochs) = 1;
  TORCH_ARG(int64_t, max_steps) = -1;
  /// Shuffle the training data each epoch with a std::mt19937_64 seeded from seed.
  TORCH_ARG(bool, shuffle) = true;

  /// Log (average the metrics of the steps since the last log, append to metrics.jsonl) every logging_steps;
  /// evaluate every eval_steps (0: only at the end, when there is eval data); checkpoint every save_steps
  /// (0: only at the end, when output_dir is set).
  TORCH_ARG(int64_t, logging_steps) = 10;
  TORCH_ARG(int64_t, eval_steps) = 0;
  TORCH_ARG(int64_t, save_steps) = 0;
  /// Keep at most this many checkpoint-<step> directories (oldest removed); 0 keeps all.
  TORCH_ARG(int64_t, save_total_limit) = 0;
  /// Metrics, checkpoints and the final model go here; empty: nothing is written (checkpoints disabled).
  TORCH_ARG(std::string, output_dir) = "";
  /// A checkpoint directory (output_dir/checkpoint-<step>) to continue from, exactly. A run with another number
  /// of steps than the checkpoint's (max_steps raised, say) continues too: the schedule is recomputed for the new
  /// total from the checkpoint's step, and the trainer says so on stderr.
  TORCH_ARG(std::string, resume_from) = "";
  /// Also write the final model to "<output_dir>/final" at the end of train(): the causal LM (save_llama), or for
  /// the reward loss a LlamaForSequenceClassification folder (decoder + score head) that transformers loads.
  TORCH_ARG(bool, save_final_model) = true;

  /// Seeds torch (torch::manual_seed) and the data shuffle. On the CPU two runs with the same seed, data and
  /// config give bit-identical losses.
  TORCH_ARG(uint64_t, seed) = 42;
  TORCH_ARG(ProgressMode, progress) = ProgressMode::Auto;
  /// The device the model and batches live on; the model is moved there.
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Score sequences from the final hidden states with prefopt::fused_linear_logps (the lm_head matmul done in
  /// chunks of at most logps_chunk_bytes of logits, forward and backward) instead of forming [B, T, V] logits:
  /// what makes long batches with a large vocabulary fit. Same numbers up to float rounding. TDPO, which needs
  /// both models' logits for its per-token KL, always scores from logits.
  TORCH_ARG(bool, fused_linear_logps) = false;
  TORCH_ARG(int64_t, logps_chunk_bytes) = int64_t{128} << 20;
  /// Padding-free training (data.packing): each micro-batch's sequences (chosen and rejected, every response of a
  /// list, ...) run end to end in one row with attention confined to each sequence, so no pad token is computed.
  /// Scores, losses and gradients equal the padded run's up to float rounding, for every loss.
  TORCH_ARG(bool, packing) = false;
  /// > 0: a micro-batch holds as many examples, in the epoch's shuffled order, as fit this many tokens (every
  /// sequence of an example counted, prompt included; data/packing.h's packed_token_count) instead of batch_size
  /// examples; an example larger than the budget trains alone (KTO's micro-batches keep two examples at least). The
  /// number of steps per epoch then follows the lengths; evaluation still batches eval_batch_size examples.
  TORCH_ARG(int64_t, max_tokens_per_batch) = 0;

  /// "bf16" / "fp16": the model's forward and backward run under autocast in that dtype while the parameters
  /// (the master weights, which must be float32) and AdamW's state stay float32; log-probs and losses are reduced
  /// in float32. fp16 scales the loss dynamically (LossScaler): a step whose gradients overflow is skipped (the
  /// weights and the optimizer state are left as they were), counted in the logged "skipped_steps", and the scale
  /// ("loss_scale" in the metrics) halves. The reference model computes under the same autocast.
  TORCH_ARG(MixedPrecision, mixed_precision) = MixedPrecision::No;
  /// fp16 only: the loss scale of the first step (torch.amp.GradScaler's default).
  TORCH_ARG(double, initial_loss_scale) = 65536.0;
  /// Recompute each decoder layer's activations in the backward instead of keeping them (see
  /// LlamaForCausalLMImpl::set_gradient_checkpointing): the same gradients in less memory, about a third more
  /// compute per step.
  TORCH_ARG(bool, gradient_checkpointing) = false;
  /// Data parallel (set_process_group): ZeRO stage 1. Each rank keeps AdamW's state for about 1/world of the
  /// parameters (whole tensors, balanced by size) and steps only those, then sends them to the others: the
  /// optimizer's memory is divided by the world size at the cost of one broadcast of the parameters per step, and
  /// every parameter gets exactly the unsharded update. Checkpoints hold the whole state, as an unsharded run writes
  /// it, so either kind of run resumes from the other's. No effect in a single process.
  TORCH_ARG(bool, shard_optimizer_state) = false;
  /// The dtype of the final model's weights on disk ("<output_dir>/final"); nullopt: the parameters' dtype.
  /// Checkpoints keep the parameters' own dtype, since resuming from rounded weights would not be exact.
  TORCH_ARG(std::optional<torch::Dtype>, save_dtype) = std::nullopt;

  /// Train a LoRA adapter (model/lora.h) instead of the whole model: every model parameter is frozen, the
  /// adapter's updates (and modules_to_save copies) train, and the reference of a loss that needs one is the same
  /// model with its adapters off (no copy in memory, as TRL does with a PEFT model). Checkpoints' model/ folders
  /// and final/ hold the adapter in PEFT's format (adapter_config.json, adapter_model.safetensors); the base
  /// weights are the ones the run started from.
  TORCH_ARG(std::optional<LoraConfig>, lora) = std::nullopt;
  /// With lora: also write the model with the adapter merged into its weights, a plain Hugging Face checkpoint,
  /// to "<output_dir>/merged" at the end of train().
  TORCH_ARG(bool, save_merged_model) = false;
};

/// What train() did.
struct TrainResult {
  /// Optimizer steps completed in total (including those before a resumption).
  int64_t global_step = 0;
  /// One entry per optimizer step run by this call, in order ("loss" is the accumulated step's loss).
  std::vector<LogEntry> steps;
  /// One entry per logging step (what metrics.jsonl got), and one per evaluation.
  std::vector<LogEntry> logs;
  std::vector<LogEntry> evals;
  /// The last checkpoint written, or empty.
  std::string last_checkpoint;
};

/// Fine-tunes `model` in place.
///
/// - model: a LlamaForCausalLM (float32, bf16 or fp16 parameters); moved to config.device, put in train mode.
/// - train_data: a Dataset of the loss's format (registered_loss_infos(); "sft" also takes pairs and trains on
///   their chosen responses); must be non-empty.
/// - eval_data: optional held-out data of the same format.
/// A reference, when the loss needs one, is a frozen clone of the model taken at construction (before any
/// resumption loads weights, and then the checkpoint's reference is loaded, so a resumed run scores against
/// the same reference).
///
/// Example:
/// ```
/// auto model = prefopt::load_llama("Qwen2.5-0.5B");
/// prefopt::data::ByteTokenizer tok;
/// auto data = prefopt::train::Dataset::read("pairs.jsonl", prefopt::train::DataFormat::Pairwise, tok);
/// prefopt::train::Trainer trainer(prefopt::train::TrainerConfig().loss("dpo").max_steps(10), model, data);
/// auto result = trainer.train();
/// result.steps.back().metrics.at("loss");
/// auto eval = trainer.evaluate(data);           // {"eval_loss", "eval_rewards/accuracies", ...}
/// ```
class Trainer {
 public:
  Trainer(TrainerConfig config, LlamaForCausalLM model, Dataset train_data,
          std::optional<Dataset> eval_data = std::nullopt);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains until max_steps / num_train_epochs (resuming from config.resume_from first, if set).
  /// Throws on a non-finite loss, naming the step.
  TrainResult train();
  /// Evaluates on the eval data given at construction (an error when there is none) / on `data`. Metrics are
  /// eval_-prefixed, averaged over examples; the model is left in the mode it was in.
  std::map<std::string, double> evaluate();
  std::map<std::string, double> evaluate(const Dataset& data);

  /// Writes a checkpoint of the current state to `directory` atomically (see checkpoint.h) / restores one. Data
  /// parallel: every rank calls both (a sharded optimizer's state is gathered for the checkpoint); only rank 0 writes.
  void save_checkpoint(const std::string& directory);
  void load_checkpoint(const std::string& directory);

  /// Called with each saved model folder (a checkpoint's model/ and final/) before it is published, to add the
  /// files a Hugging Face folder carries beside the weights (the tokenizer's, generation_config.json).
  void set_model_files_writer(std::function<void(const std::string& folder)> writer);

  /// Called with each logging-step entry and each evaluation, after they are written.
  void set_log_callback(std::function<void(const LogEntry& entry, bool is_eval)> callback);

  /// Makes this trainer one rank of a data-parallel job (distributed.h): call it on every rank, before train().
  /// Every rank gets rank 0's parameters; each epoch's shuffled order (the same on every rank) is dealt out to
  /// the ranks in turn, a rank taking positions rank, rank + world, ... (the last positions wrap to the start,
  /// so every rank gets ceil(n / world) examples, as DistributedSampler pads); batch_size stays per rank, so the
  /// global batch is batch_size x gradient_accumulation_steps x world. Gradients are averaged over the ranks in
  /// buckets as the backward produces them (only on a step's last micro-batch); the logged loss and metrics are
  /// means over the ranks; only rank 0 writes metrics, checkpoints and the final model, and every rank resumes
  /// from them. A loss's batch statistics (KTO's KL baseline, BCO's running mean) are those of the global batch, and
  /// precomputed reference tables are computed in shares and gathered. With shard_optimizer_state, ZeRO-1.
  /// Not with max_tokens_per_batch.
  void set_process_group(std::shared_ptr<ProcessGroup> group);

  /// Data parallel: the gradient all-reduce of the last optimizer step. communication_seconds: how long some bucket
  /// was in flight (the union of their spans); hidden_seconds: the part of it before the backward ended, behind
  /// computation; waited_seconds: how long the step then waited for the rest. Zeros in a single process.
  struct CommunicationStats {
    double communication_seconds = 0, hidden_seconds = 0, waited_seconds = 0;
    int64_t buckets = 0;
  };
  CommunicationStats last_step_communication() const;

  /// The policy being trained (the same module the constructor got).
  LlamaForCausalLM model() const;
  /// The LoRA adapter being trained, or null when config.lora is unset.
  LoraAdapter* lora() const;
  const TrainerConfig& config() const;
  /// Optimizer steps completed, and the total train() will reach.
  int64_t global_step() const;
  int64_t total_steps() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace prefopt::train
