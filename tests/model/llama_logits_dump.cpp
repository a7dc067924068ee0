// Test helper for tests/python/test_llama_parity.py: loads a Hugging Face checkpoint folder with prefopt::load_llama,
// runs one forward pass on the input ids (and attention mask) of a safetensors file, and writes the logits, the final
// hidden states and the lm_head weight, in float32, to another safetensors file; given RESAVE_DIR, it also writes the
// loaded model there with prefopt::save_llama. A folder whose config.json names a *ForSequenceClassification
// architecture is loaded with prefopt::load_llama_sequence_classifier and its "scores" [B, num_labels] are written
// instead. It computes nothing else and never compares: the Python tests compare against transformers.
//
// Usage: prefopt_llama_logits_dump MODEL_DIR INPUTS.safetensors OUTPUT.safetensors [float32|bfloat16|float16]
//                                  [RESAVE_DIR]
//   INPUTS holds "input_ids" (integer [B, T]) and optionally "attention_mask" ([B, T], 0/1).
#include <iostream>
#include <string>

#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <prefopt/model/llama.h>
#include <prefopt/model/safetensors.h>
#include <prefopt/model/sequence_classifier.h>

int main(int argc, char** argv) {
  if (argc < 4 || argc > 6) {
    std::cerr << "usage: " << argv[0]
              << " MODEL_DIR INPUTS.safetensors OUTPUT.safetensors [float32|bfloat16|float16] [RESAVE_DIR]\n";
    return 2;
  }
  try {
    const std::string dtype_name = argc >= 5 ? argv[4] : "float32";
    torch::Dtype dtype = torch::kFloat;
    if (dtype_name == "bfloat16") {
      dtype = torch::kBFloat16;
    } else if (dtype_name == "float16") {
      dtype = torch::kHalf;
    } else if (dtype_name != "float32") {
      std::cerr << "unknown dtype '" << dtype_name << "'\n";
      return 2;
    }
    const prefopt::safetensors::File inputs(argv[2]);
    const torch::Tensor ids = inputs.load("input_ids");
    const torch::Tensor mask = inputs.contains("attention_mask") ? inputs.load("attention_mask") : torch::Tensor();
    torch::NoGradGuard no_grad;
    const auto config = prefopt::LlamaConfig::from_json_file(std::string(argv[1]) + "/config.json");
    if (config.num_labels() >= 1) {
      auto classifier = prefopt::load_llama_sequence_classifier(argv[1], prefopt::LlamaLoadOptions().dtype(dtype));
      classifier->eval();
      prefopt::safetensors::save_file(argv[3], {{"scores", classifier->forward(ids, mask).to(torch::kFloat)}});
      return 0;
    }
    auto model = prefopt::load_llama(argv[1], prefopt::LlamaLoadOptions().dtype(dtype));
    model->eval();
    const torch::Tensor hidden = model->hidden_states(ids, mask);
    const torch::Tensor logits = model->forward(ids, mask);
    prefopt::safetensors::save_file(argv[3], {{"logits", logits.to(torch::kFloat)},
                                              {"hidden", hidden.to(torch::kFloat)},
                                              {"lm_head_weight", model->lm_head_weight().to(torch::kFloat)}});
    if (argc == 6) prefopt::save_llama(*model, argv[5]);
  } catch (const c10::Error& e) {
    std::cerr << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
