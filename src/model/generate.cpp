// Batched greedy / temperature / top-k / top-p decoding for LlamaForCausalLM, with the model's KV cache (prefill,
// then one token per step) or by re-running the full forward each step. Prompts are turned to left padding once, so
// every row's next token is read from the same last column; only that column's logits are ever formed. It never
// records gradients.
#include <prefopt/model/generate.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

namespace prefopt::model {
namespace {

std::string shape_of(const torch::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

void check_options(const GenerateOptions& options, int64_t vocab_size) {
  TORCH_CHECK(options.max_new_tokens() >= 1, "generate: max_new_tokens must be >= 1, got ", options.max_new_tokens());
  TORCH_CHECK(std::isfinite(options.temperature()) && options.temperature() >= 0.0,
              "generate: temperature must be finite and >= 0 (0 = greedy), got ", options.temperature());
  TORCH_CHECK(options.top_k() >= 0 && options.top_k() <= vocab_size,
              "generate: top_k must be in [0, vocab_size ", vocab_size, "] (0 = no limit), got ", options.top_k());
  TORCH_CHECK(std::isfinite(options.top_p()) && options.top_p() > 0.0 && options.top_p() <= 1.0,
              "generate: top_p must be in (0, 1] (1 = off), got ", options.top_p());
  TORCH_CHECK(options.pad_token_id() >= 0 && options.pad_token_id() < vocab_size,
              "generate: pad_token_id must be in [0, vocab_size ", vocab_size, "), got ", options.pad_token_id());
  for (size_t i = 0; i < options.eos_token_ids().size(); ++i) {
    const int64_t id = options.eos_token_ids()[i];
    TORCH_CHECK(id >= 0 && id < vocab_size, "generate: eos_token_ids[", i, "] must be in [0, vocab_size ", vocab_size,
                "), got ", id);
  }
}

torch::Tensor next_tokens(const torch::Tensor& last_logits, const GenerateOptions& options) {
  if (options.temperature() == 0.0) return last_logits.argmax(-1);
  torch::Tensor scaled = last_logits / options.temperature();
  if (options.top_k() > 0 && options.top_k() < scaled.size(-1)) {
    // Ties at the k-th value are all kept: the filter is by value, as transformers' TopKLogitsWarper.
    torch::Tensor kth = std::get<0>(scaled.topk(options.top_k(), -1)).narrow(-1, options.top_k() - 1, 1);
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
  }
  if (options.top_p() < 1.0) {
    // Ascending order: a token goes when the probability mass at or below it is <= 1 - top_p; the most likely
    // token always stays (transformers' TopPLogitsWarper).
    const auto [sorted, order] = scaled.sort(-1, /*descending=*/false);
    torch::Tensor remove = sorted.softmax(-1).cumsum(-1) <= (1.0 - options.top_p());
    remove.select(-1, -1).fill_(false);
    scaled = scaled.masked_fill(remove.scatter(-1, order, remove), -std::numeric_limits<float>::infinity());
  }
  torch::Tensor probs = scaled.softmax(-1);
  return at::multinomial(probs, 1, /*replacement=*/false, options.generator()).squeeze(-1);
}

}  // namespace

GenerateOutput generate(LlamaForCausalLMImpl& model, const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask, const GenerateOptions& options) {
  const int64_t V = model.config().vocab_size();
  check_options(options, V);
  TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2 && input_ids.size(0) >= 1 && input_ids.size(1) >= 1,
              "generate: input_ids must have shape [B, P] with B >= 1 and P >= 1, got ", shape_of(input_ids));
  TORCH_CHECK(at::isIntegralType(input_ids.scalar_type(), /*includeBool=*/false),
              "generate: input_ids must be integers, got dtype ", input_ids.scalar_type());
  const torch::Device device = model.lm_head_weight().device();
  TORCH_CHECK(input_ids.device() == device, "generate: input_ids must be on the model's device (", device, "), got ",
              input_ids.device());
  const int64_t B = input_ids.size(0), P = input_ids.size(1);

  at::NoGradGuard no_grad;
  torch::Tensor ids = input_ids.to(torch::kLong);
  torch::Tensor real;  // [B, P] bool, true on prompt tokens
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == P,
                "generate: attention_mask must have shape [B, P] matching input_ids ", shape_of(input_ids), ", got ",
                shape_of(attention_mask));
    TORCH_CHECK(at::isIntegralType(attention_mask.scalar_type(), /*includeBool=*/true),
                "generate: attention_mask must be bool or integer 0/1, got dtype ", attention_mask.scalar_type());
    TORCH_CHECK(attention_mask.device() == device, "generate: attention_mask must be on the model's device (", device,
                "), got ", attention_mask.device());
    TORCH_CHECK(attention_mask.eq(0).logical_or(attention_mask.eq(1)).all().item<bool>(),
                "generate: attention_mask must hold only 0 and 1");
    real = attention_mask.to(torch::kBool);
  } else {
    real = torch::ones({B, P}, torch::TensorOptions().dtype(torch::kBool).device(device));
  }
  const torch::Tensor lengths = real.sum(1);  // [B]
  const torch::Tensor columns = torch::arange(P, torch::TensorOptions().dtype(torch::kLong).device(device));
  const torch::Tensor right_padded = columns.unsqueeze(0).lt(lengths.unsqueeze(1));
  const torch::Tensor left_padded = columns.unsqueeze(0).ge((P - lengths).unsqueeze(1));
  // Rows padded on the left are moved to the right first, so one gather below left-pads every row; holes inside a
  // prompt would be silently misread, so they are refused.
  const torch::Tensor is_left = real.eq(left_padded).all(1).logical_and(real.eq(right_padded).all(1).logical_not());
  TORCH_CHECK(real.eq(right_padded).all(1).logical_or(is_left).all().item<bool>(),
              "generate: attention_mask must be right-padded (each row 1 on its first tokens, then 0) or left-padded "
              "(0 first, then 1 on its last tokens)");
  if (is_left.any().item<bool>()) {
    const torch::Tensor from = (columns.unsqueeze(0) + (P - lengths).unsqueeze(1)).remainder(P);
    ids = torch::where(is_left.unsqueeze(1), ids.gather(1, from), ids);
    real = torch::where(is_left.unsqueeze(1), right_padded, real);
  }
  const int64_t shortest = lengths.min().item<int64_t>();
  TORCH_CHECK(shortest >= 1, "generate: every prompt must have at least one real token (attention_mask row ",
              lengths.argmin().item<int64_t>(), " is all 0)");
  const torch::Tensor real_ids = ids.masked_select(real);
  TORCH_CHECK(real_ids.min().item<int64_t>() >= 0 && real_ids.max().item<int64_t>() < V,
              "generate: input_ids must be in [0, vocab_size ", V, ") on real tokens, got values in [",
              real_ids.min().item<int64_t>(), ", ", real_ids.max().item<int64_t>(), "]");

  // Left padding puts every row's last prompt token in the last column; positions restart at each row's first
  // real token, so the rotary phases (and hence the logits) match the unpadded row's.
  const torch::Tensor source = columns.unsqueeze(0) - (P - lengths).unsqueeze(1);  // [B, P]
  const torch::Tensor valid = source.ge(0);
  torch::Tensor seq = ids.gather(1, source.clamp_min(0)).masked_fill(valid.logical_not(), options.pad_token_id());
  torch::Tensor mask = valid.to(torch::kLong);
  torch::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);

  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  const torch::Tensor eos = torch::tensor(options.eos_token_ids(), torch::kLong).to(device);
  torch::Tensor done = torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(device));
  torch::Tensor finished = done.clone();
  torch::Tensor generated = torch::zeros({B}, long_opts);
  const torch::Tensor pad = torch::full({B}, options.pad_token_id(), long_opts);
  std::vector<torch::Tensor> steps;
  KVCache cache;
  if (options.use_cache()) cache = model.new_cache(B, P + options.max_new_tokens());
  // The last position's hidden state, from the cache (only the new tokens run) or from the whole sequence.
  auto last_logits = [&](const torch::Tensor& new_ids, const torch::Tensor& new_mask, const torch::Tensor& new_pos) {
    const torch::Tensor hidden = options.use_cache()
                                     ? model.model->forward(new_ids, new_mask, new_pos, &cache)
                                     : model.hidden_states(seq, mask, positions);
    return model.logits(hidden.select(1, -1)).to(torch::kFloat);  // [B, V]
  };
  torch::Tensor last = last_logits(seq, mask, positions);
  for (int64_t step = 0; step < options.max_new_tokens(); ++step) {
    torch::Tensor next = torch::where(done, pad, next_tokens(last, options));
    steps.push_back(next);
    generated += done.logical_not().to(torch::kLong);
    if (eos.numel() > 0) {
      const torch::Tensor stops = at::isin(next, eos).logical_and(done.logical_not());
      finished = finished.logical_or(stops);
      done = done.logical_or(stops);
    }
    if (step + 1 == options.max_new_tokens() || done.all().item<bool>()) break;
    // A stopped row keeps running with its new tokens masked out; its outputs are discarded.
    const torch::Tensor new_mask = done.logical_not().to(torch::kLong).unsqueeze(1);
    const torch::Tensor new_pos = positions.select(1, -1).unsqueeze(1) + 1;
    if (options.use_cache()) {  // the cache holds the past: only the newest position is needed
      positions = new_pos;
    } else {
      seq = torch::cat({seq, next.unsqueeze(1)}, 1);
      mask = torch::cat({mask, new_mask}, 1);
      positions = torch::cat({positions, new_pos}, 1);
    }
    last = last_logits(next.unsqueeze(1), new_mask, new_pos);
  }

  GenerateOutput out;
  out.sequences = torch::stack(steps, 1);
  out.lengths = generated;
  out.finished = finished;
  const torch::Tensor host = out.sequences.to(torch::kCPU).contiguous();
  const torch::Tensor host_lengths = generated.to(torch::kCPU);
  const torch::Tensor host_finished = finished.to(torch::kCPU);
  const int64_t N = host.size(1);
  const int64_t* data = host.data_ptr<int64_t>();
  out.completions.resize(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = host_lengths[b].item<int64_t>();
    if (host_finished[b].item<bool>()) --n;  // the EOS itself is not part of the completion's text
    out.completions[static_cast<size_t>(b)].assign(data + b * N, data + b * N + n);
  }
  return out;
}

GenerateOutput generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& options) {
  TORCH_CHECK(!prompts.empty(), "generate: prompts must hold at least one prompt, got none");
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    TORCH_CHECK(!prompts[i].empty(), "generate: prompts[", i, "] is empty; every prompt needs at least one token");
    longest = std::max(longest, prompts[i].size());
  }
  const auto B = static_cast<int64_t>(prompts.size()), P = static_cast<int64_t>(longest);
  // pad_token_id is range-checked by the tensor overload before any forward, and only ever masked out.
  torch::Tensor ids = torch::full({B, P}, options.pad_token_id(), torch::kLong);
  torch::Tensor mask = torch::zeros({B, P}, torch::kLong);
  int64_t* id_data = ids.data_ptr<int64_t>();
  int64_t* mask_data = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = prompts[static_cast<size_t>(b)];
    for (size_t t = 0; t < prompt.size(); ++t) {
      id_data[b * P + static_cast<int64_t>(t)] = prompt[t];
      mask_data[b * P + static_cast<int64_t>(t)] = 1;
    }
  }
  const torch::Device device = model.lm_head_weight().device();
  return generate(model, ids.to(device), mask.to(device), options);
}

}  // namespace prefopt::model
