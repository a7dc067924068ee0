// Saving and restoring a Trainer's whole state as a checkpoint folder (checkpoint.h's layout, written atomically):
// the model or adapter, the reference copy, AdamW's state, the loss's state, torch's generator and the run's
// position, every field checked before anything is loaded. Never trains and never changes the math.
#include <cstdio>
#include <mutex>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/serialize.h>

#include <prefopt/train/checkpoint.h>

#include "../common/files.h"
#include "trainer_impl.h"

namespace prefopt::train {

void Trainer::save_checkpoint(const std::string& directory) {
  auto& s = *state_;
  // ZeRO-1: AdamW's state comes together on rank 0, which writes it as an unsharded run would.
  const std::unique_ptr<torch::optim::AdamW> whole =
      s.optimizer_shards ? s.optimizer_shards->consolidate(*s.optimizer, 0) : nullptr;
  if (!s.writes()) return;
  write_directory_atomically(directory, [&](const std::string& tmp) {
    if (s.lora) {
      s.lora->save(tmp + "/model");  // the base weights are those the run started from
    } else {
      save_llama(*s.model, tmp + "/model");
    }
    if (s.model_files_writer) s.model_files_writer(tmp + "/model");
    if (s.reference->model() && !s.reference->shares_policy() && s.config.ref_model() == RefModelMode::Copy) {
      save_llama(**s.reference->model(), tmp + "/ref_model");
    }
    torch::save(whole ? *whole : *s.optimizer, tmp + "/optimizer.pt");
    {
      torch::serialize::OutputArchive archive;
      for (const auto& [name, value] : s.objective->state()) {
        if (value.defined()) archive.write(name, value.cpu());
      }
      archive.save_to(tmp + "/loss_state.pt");
    }
    {
      torch::serialize::OutputArchive archive;
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
      std::lock_guard<std::mutex> lock(gen.mutex());
      archive.write("cpu", gen.get_state());
      archive.save_to(tmp + "/rng.pt");
    }
    std::ofstream out(tmp + "/trainer_state.json", std::ios::binary | std::ios::trunc);
    out << trainer_state_json(s.run, s.identity());
    out.close();
    TORCH_CHECK(out.good(), "cannot write ", tmp, "/trainer_state.json");
  });
}

void Trainer::load_checkpoint(const std::string& directory) {
  auto& s = *state_;
  const std::string state_path = files::join(directory, "trainer_state.json");
  TORCH_CHECK(files::exists(state_path), "resume_from: \"", directory, "\" is not a checkpoint (no trainer_state.json)");
  std::string text;
  {
    std::ifstream in(state_path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  // Everything is read and checked before any of the run's state changes.
  SavedTrainerState saved = parse_trainer_state(text, state_path, s.identity());

  if (s.lora) {
    TORCH_CHECK(files::exists(files::join(directory, "model/adapter_config.json")), "resume_from: \"", directory,
                "\" holds no LoRA adapter (model/adapter_config.json), but this run trains one (model.lora)");
    s.lora->load_weights(files::join(directory, "model"));
  } else {
    TORCH_CHECK(!files::exists(files::join(directory, "model/adapter_config.json")), "resume_from: \"", directory,
                "\" holds a LoRA adapter; resume it with the same model.lora settings");
    load_llama_weights(*s.model, files::join(directory, "model"));
  }
  const std::string ref_dir = files::join(directory, "ref_model");
  if (s.reference->model() && !s.reference->shares_policy() && files::exists(ref_dir)) {
    load_llama_weights(**s.reference->model(), ref_dir);
  }
  if (s.optimizer_shards) {
    const auto whole = s.optimizer_shards->whole_like(*s.optimizer);
    torch::load(*whole, files::join(directory, "optimizer.pt"));
    s.optimizer_shards->take_state(*whole, *s.optimizer);
  } else {
    torch::load(*s.optimizer, files::join(directory, "optimizer.pt"));
  }
  {
    torch::serialize::InputArchive archive;
    archive.load_from(files::join(directory, "loss_state.pt"));
    std::map<std::string, torch::Tensor> loss_state;
    for (const auto& [name, value] : s.objective->state()) {
      torch::Tensor t;
      if (archive.try_read(name, t)) loss_state[name] = t;
    }
    s.objective->load_state(loss_state);
  }
  {
    torch::serialize::InputArchive archive;
    archive.load_from(files::join(directory, "rng.pt"));
    torch::Tensor cpu;
    archive.read("cpu", cpu);
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(cpu);
  }
  s.run = std::move(saved.state);
  if (s.config.max_tokens_per_batch() > 0 && s.run.order_ready) {
    s.micro_batches = detail::plan_micro_batches(s.run.order, s.batch_plan());
  }
  if (s.scaler) {
    // A checkpoint of a run without fp16 has no scaler state: the scale starts afresh.
    if (s.run.loss_scale > 0) {
      s.scaler->set_state(s.run.loss_scale, s.run.loss_scale_growth_tracker);
    } else {
      s.run.loss_scale = s.scaler->scale();
    }
  } else {
    s.run.loss_scale = 0.0;
  }
  s.schedule->set_step(s.run.global_step);
  if (saved.total_steps != s.total_steps) {
    std::fprintf(stderr,
                 "resume: %s was written by a run of %lld steps; this run has %lld, so the learning-rate schedule "
                 "(warm-up and decay) is recomputed for %lld steps and continues from step %lld\n",
                 directory.c_str(), static_cast<long long>(saved.total_steps), static_cast<long long>(s.total_steps),
                 static_cast<long long>(s.total_steps), static_cast<long long>(s.run.global_step));
  }
  s.resumed = true;
}

}  // namespace prefopt::train
