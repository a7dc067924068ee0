// Test helper for tests/python/test_lora_peft.py: runs prefopt's LoRA on a Hugging Face checkpoint folder and writes
// what the Python test compares against PEFT and transformers. It computes nothing else and never compares.
//
// Usage: prefopt_lora_dump BASE_DIR INPUTS.safetensors OUTPUT.safetensors load ADAPTER_DIR
//          attaches the adapter folder (as PEFT saved it) and writes "logits" (adapters on) and "base_logits" (off)
//        prefopt_lora_dump BASE_DIR INPUTS.safetensors OUTPUT.safetensors create ADAPTER_DIR MERGED_DIR SEED
//          builds an adapter from ADAPTER_DIR/adapter_config.json with fresh weights drawn from SEED (B not zero when
//          init_lora_weights is false), writes it back into ADAPTER_DIR (LoraAdapter::save), the merged model into
//          MERGED_DIR (save_merged), and the logits as above
//   INPUTS holds "input_ids" (integer [B, T]) and optionally "attention_mask" ([B, T], 0/1).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/model/llama.h>
#include <prefopt/model/lora.h>
#include <prefopt/model/safetensors.h>

int main(int argc, char** argv) {
  const std::string mode = argc >= 5 ? argv[4] : "";
  if (!((mode == "load" && argc == 6) || (mode == "create" && argc == 8))) {
    std::cerr << "usage: " << argv[0] << " BASE_DIR INPUTS OUTPUT load ADAPTER_DIR | create ADAPTER_DIR MERGED_DIR SEED\n";
    return 2;
  }
  try {
    const prefopt::safetensors::File inputs(argv[2]);
    const torch::Tensor ids = inputs.load("input_ids");
    const torch::Tensor mask = inputs.contains("attention_mask") ? inputs.load("attention_mask") : torch::Tensor();
    auto model = prefopt::load_llama(argv[1]);
    model->eval();
    std::unique_ptr<prefopt::LoraAdapter> lora;
    if (mode == "load") {
      lora = prefopt::LoraAdapter::load(model, argv[5]);
    } else {
      std::ifstream in(std::string(argv[5]) + "/adapter_config.json");
      std::stringstream text;
      text << in.rdbuf();
      torch::manual_seed(std::strtoull(argv[7], nullptr, 10));
      lora = std::make_unique<prefopt::LoraAdapter>(model, prefopt::LoraConfig::from_json_string(text.str()));
      lora->save(argv[5]);
      lora->save_merged(argv[6]);
    }
    torch::NoGradGuard no_grad;
    const torch::Tensor logits = model->forward(ids, mask);
    torch::Tensor base;
    {
      prefopt::AdaptersDisabled off(*model);
      base = model->forward(ids, mask);
    }
    prefopt::safetensors::save_file(argv[3], {{"logits", logits.to(torch::kFloat)}, {"base_logits", base.to(torch::kFloat)}});
  } catch (const c10::Error& e) {
    std::cerr << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
