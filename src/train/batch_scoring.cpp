// Scoring a micro-batch into typed scores: collation, the policy's and the reference's forward passes (logits, or
// hidden states through the chunked fused-linear operator), LD-DPO's pair log-probs, WPO's weights, TDPO's
// per-token KL and KTO's mismatched pairs. Never computes a loss and never touches the optimizer.
#include <prefopt/train/batch_scoring.h>

#include <algorithm>
#include <numeric>

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>

#include <prefopt/data/collate.h>
#include <prefopt/data/packing.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/model/sequence_classifier.h>
#include <prefopt/packed_scoring.h>
#include <prefopt/scoring.h>
#include <prefopt/scoring_joint.h>
#include <prefopt/sequence_reductions.h>

namespace prefopt::train {

namespace {

constexpr int64_t kIgnore = -100;

template <typename T>
std::vector<T> gather(const std::vector<T>& all, const std::vector<int64_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (auto i : idx) out.push_back(all[static_cast<size_t>(i)]);
  return out;
}

// One model's scores of a collated batch: [N] summed log-probs, [N, T] token log-probs (in the padded layout also
// when packed), the logits when asked to keep them ([N, T, V], or [S, V] when packed) and the final hidden states
// when asked ([N, T, H] in the padded layout).
struct ModelScores {
  torch::Tensor logps, token_logps, logits, hidden;
};

// A collated batch on the device: the padded rows, and with packing also the packed row the models run on.
struct Rows {
  torch::Tensor ids, mask, labels;
  bool packed = false;
  data::PackedBatch layout;                     // packing only; CPU
  torch::Tensor packed_ids, positions, packed_labels, cu_seqlens;  // packing only; [1, S], [1, S], [S], [N + 1]
};

// `labels`: the batch's own labels unless given (DOVE scores the prompts too: its joint_labels).
Rows to_device(const data::SequenceBatch& batch, torch::Device device, bool packing,
               const torch::Tensor& labels = {}) {
  const torch::Tensor& scored = labels.defined() ? labels : batch.labels;
  Rows rows;
  rows.ids = batch.input_ids.to(device);
  rows.mask = batch.attention_mask.to(device);
  rows.labels = scored.to(device);
  if (!packing) return rows;
  rows.packed = true;
  rows.layout = data::pack(batch);
  rows.packed_ids = rows.layout.input_ids.to(device);
  rows.positions = rows.layout.position_ids.to(device);
  rows.packed_labels = data::pack_like(rows.layout, scored).to(device);
  rows.cu_seqlens = rows.layout.cu_seqlens.to(device);
  return rows;
}

// The final hidden states of a batch's sequences: [N, T, H] padded, or [S, H] of the packed row.
torch::Tensor hidden_of(LlamaForCausalLM& m, const Rows& rows) {
  if (!rows.packed) return m->hidden_states(rows.ids, rows.mask);
  return m->hidden_states_packed(rows.packed_ids, rows.positions, rows.layout.cu_seqlens).squeeze(0);
}

// Per-sequence log-probs of logits [N, T, V] or packed [S, V]: (logps [N], token_logps [N, T] padded).
std::pair<torch::Tensor, torch::Tensor> logps_of(const torch::Tensor& logits, const Rows& rows) {
  if (!rows.packed) {
    auto sl = sequence_logps(logits, rows.labels);
    return {sl.logps, sl.token_logps};
  }
  auto sl = packed_sequence_logps(logits, rows.packed_labels, rows.cu_seqlens);
  return {sl.logps, data::unpack(rows.layout, sl.token_logps)};
}

}  // namespace

BatchScorer::BatchScorer(ScoringConfig config, ScoringNeeds needs) : config_(config), needs_(needs) {}

bool BatchScorer::reference_tabulable() const { return !needs_.token_kl && !needs_.kl_pairs && !needs_.steps; }

namespace {

ModelScores run_model(LlamaForCausalLM& m, const Rows& rows, bool keep_logits, const ScoringConfig& config,
                      bool keep_hidden = false) {
  const torch::Tensor final_hidden = hidden_of(m, rows);
  const torch::Tensor padded_hidden =
      !keep_hidden ? torch::Tensor() : rows.packed ? data::unpack(rows.layout, final_hidden) : final_hidden;
  if (keep_logits || !config.fused_linear_logps) {
    torch::Tensor logits = m->logits(final_hidden);
    auto [logps, token_logps] = logps_of(logits, rows);
    return {logps, token_logps, keep_logits ? logits : torch::Tensor(), padded_hidden};
  }
  torch::Tensor hidden = final_hidden;
  torch::Tensor weight = m->lm_head_weight();
  // Under autocast the lm_head matmul runs in the autocast dtype, as the unfused linear does (the op itself is not
  // autocast-aware); its log-probs still come out in float32.
  const c10::DeviceType type = hidden.device().type();
  if (at::autocast::is_autocast_enabled(type)) {
    const at::ScalarType low = at::autocast::get_autocast_dtype(type);
    hidden = hidden.to(low);
    weight = weight.to(low);
  }
  const auto fused = FusedLinearLogpsOptions().ignore_index(kIgnore).chunk_bytes(config.logps_chunk_bytes);
  if (rows.packed) {
    const auto sl = packed_fused_linear_logps(hidden, weight, rows.packed_labels, rows.cu_seqlens, fused);
    return {sl.logps, data::unpack(rows.layout, sl.token_logps), torch::Tensor(), padded_hidden};
  }
  const int64_t b = hidden.size(0), t = hidden.size(1);
  const torch::Tensor per_token =
      fused_linear_logps(hidden.reshape({b * t, hidden.size(2)}), weight, rows.labels.reshape({b * t}),
                         fused)
          .view({b, t});
  return {per_token.sum(1), per_token, torch::Tensor(), padded_hidden};
}

// TDPO's per-sequence KL and WPO's per-sequence log-weights, from logits kept by run_model (padded or packed).
torch::Tensor sequence_kl_of(const ModelScores& policy, const ModelScores& ref, const Rows& rows) {
  if (!rows.packed) return sequence_kl(policy.logits, ref.logits, rows.labels, kIgnore);
  return packed_sequence_kl(policy.logits, ref.logits, rows.packed_labels, rows.cu_seqlens, kIgnore);
}

torch::Tensor wpo_log_weights_of(const ModelScores& policy, const Rows& rows) {
  if (!rows.packed) return wpo_sequence_log_weights(policy.logits, rows.labels, kIgnore);
  return packed_wpo_sequence_log_weights(policy.logits, rows.packed_labels, rows.cu_seqlens, kIgnore);
}

// A pair batch's chosen and rejected log-probs (rows [0, B) and [B, 2B)), with LD-DPO's down-weighted tails when
// alpha != 1.
std::pair<torch::Tensor, torch::Tensor> pair_logps(const ModelScores& s, const torch::Tensor& labels, int64_t b,
                                                   double ld_alpha) {
  if (ld_alpha == 1.0) return {s.logps.slice(0, 0, b), s.logps.slice(0, b, 2 * b)};
  const torch::Tensor scored = labels.ne(kIgnore);
  return ld_dpo_logps(s.token_logps.slice(0, 0, b), scored.slice(0, 0, b), s.token_logps.slice(0, b, 2 * b),
                      scored.slice(0, b, 2 * b), ld_alpha);
}

// TPO's step scores of a list batch: per step, the mean token log-prob under the policy and the reference, and the
// policy's mean last hidden state. Row b * K + k holds list b's response k after its prompt (P tokens): completion
// token j sits at input position P + j and is predicted at position P - 1 + j.
ListScores score_steps(LlamaForCausalLM& policy, LlamaForCausalLM* reference_model, const Dataset& data,
                       const std::vector<int64_t>& idx, const data::ListBatch& batch, const Rows& rows,
                       const ScoringConfig& config) {
  TORCH_CHECK(data.step_ids.size() == data.lists.size(), "scoring: the loss scores each response by steps ",
              "(train::add_step_ids), and the data has ", data.step_ids.empty() ? "no step ids" : "step ids for only some lists");
  TORCH_CHECK(reference_model != nullptr, "scoring: step scores need the reference model (ref_model \"copy\")");
  const int64_t b = batch.num_lists, k = batch.list_size, t = rows.ids.size(1);
  torch::Tensor logp_steps = torch::full({b * k, t}, -1, torch::kLong);
  torch::Tensor hidden_steps = torch::full({b * k, t}, -1, torch::kLong);
  auto lp = logp_steps.accessor<int64_t, 2>();
  auto hs = hidden_steps.accessor<int64_t, 2>();
  const auto prompt_lengths = batch.prompt_lengths.accessor<int64_t, 1>();
  int64_t num_steps = 1;
  for (int64_t i = 0; i < b; ++i) {
    const auto& list_steps = data.step_ids[static_cast<size_t>(idx[static_cast<size_t>(i)])];
    for (int64_t j = 0; j < static_cast<int64_t>(list_steps.size()); ++j) {
      const int64_t row = i * k + j, p = prompt_lengths[row];
      const auto& steps = list_steps[static_cast<size_t>(j)];
      for (int64_t c = 0; c < static_cast<int64_t>(steps.size()) && p + c < t; ++c) {
        lp[row][p - 1 + c] = steps[static_cast<size_t>(c)];
        hs[row][p + c] = steps[static_cast<size_t>(c)];
        num_steps = std::max(num_steps, steps[static_cast<size_t>(c)] + 1);
      }
    }
  }
  logp_steps = logp_steps.to(rows.ids.device());
  hidden_steps = hidden_steps.to(rows.ids.device());
  ListScores s;
  ScoringConfig unfused = config;
  unfused.fused_linear_logps = false;
  const ModelScores policy_tokens = run_model(policy, rows, /*keep_logits=*/false, unfused, /*keep_hidden=*/true);
  const torch::Tensor& hidden = policy_tokens.hidden;
  s.policy = policy_tokens.logps.view({b, k});
  const StepMeans policy_steps = step_means(policy_tokens.token_logps, logp_steps, num_steps, /*check_inputs=*/false);
  s.policy_steps = policy_steps.means.view({b, k, num_steps});
  s.step_mask = policy_steps.mask.view({b, k, num_steps});
  s.step_embeddings =
      step_means(hidden.detach(), hidden_steps, num_steps, /*check_inputs=*/false).means.view({b, k, num_steps, -1});
  torch::NoGradGuard guard;
  AdaptersDisabled base_only(**reference_model);  // a reference never computes with adapters (LoRA's is the policy)
  const ModelScores ref_tokens = run_model(*reference_model, rows, /*keep_logits=*/false, unfused);
  s.ref = ref_tokens.logps.view({b, k});
  s.ref_steps = step_means(ref_tokens.token_logps, logp_steps, num_steps, false).means.view({b, k, num_steps});
  return s;
}

}  // namespace

BatchScores BatchScorer::score(LlamaForCausalLM& policy, LlamaForCausalLM* reference_model,
                               const torch::Tensor& reference_table, const Dataset& data,
                               const std::vector<int64_t>& idx) const {
  const auto dev = config_.device;
  const bool packing = config_.packing;
  const auto collate = data::CollateOptions().pad_token_id(config_.pad_token_id);
  const bool live = needs_.reference && reference_model != nullptr &&
                    (!reference_table.defined() || !reference_tabulable());
  TORCH_CHECK(!needs_.reference || live || reference_table.defined(),
              "scoring: the loss needs reference log-probs but neither a reference model nor a table was given");
  auto table_rows = [&] { return reference_table.index_select(0, torch::tensor(idx, torch::kLong)).to(dev); };
  auto reference = [&](const Rows& rows, bool keep_logits) {
    torch::NoGradGuard guard;
    AdaptersDisabled base_only(**reference_model);  // a reference never computes with adapters (LoRA's is the policy)
    return run_model(*reference_model, rows, keep_logits, config_);
  };

  switch (data.format) {
    case DataFormat::Pairwise: {
      const auto batch = data::collate_pairs(gather(data.pairs, idx), collate);
      const int64_t b = batch.num_pairs;
      const Rows rows = to_device(batch, dev, packing);
      if (needs_.pooled_hidden) {
        // A reward model reads the final hidden state at the last non-pad token; no log-prob is formed.
        PairScores s;
        const torch::Tensor hidden = hidden_of(policy, rows);
        const torch::Tensor at = last_token_positions(rows.ids, config_.pad_token_id);
        // Packed, row r's token at column c sits at cu_seqlens[r] + c of the packed row.
        const torch::Tensor pooled =
            rows.packed ? hidden.index_select(0, rows.cu_seqlens.slice(0, 0, -1) + at)
                        : hidden.gather(1, at.view({-1, 1, 1}).expand({-1, 1, hidden.size(2)})).squeeze(1);
        s.chosen_hidden = pooled.slice(0, 0, b);
        s.rejected_hidden = pooled.slice(0, b, 2 * b);
        const auto lengths = batch.completion_lengths.to(dev, torch::kFloat32);
        s.chosen_lengths = lengths.slice(0, 0, b);
        s.rejected_lengths = lengths.slice(0, b, 2 * b);
        if (batch.margins.defined()) s.margins = batch.margins.to(dev, torch::kFloat32);
        if (batch.magnitudes.defined()) s.magnitudes = batch.magnitudes.to(dev, torch::kFloat32);
        return s;
      }
      const bool keep_logits = needs_.token_kl || needs_.wpo_weights;
      const ModelScores pol = run_model(policy, rows, keep_logits, config_);
      PairScores s;
      std::tie(s.policy_chosen, s.policy_rejected) = pair_logps(pol, rows.labels, b, needs_.ld_alpha);
      const auto lengths = batch.completion_lengths.to(dev, torch::kFloat32);
      s.chosen_lengths = lengths.slice(0, 0, b);
      s.rejected_lengths = lengths.slice(0, b, 2 * b);
      s.chosen_nll = mean_token_nll(pol.token_logps.slice(0, 0, b), rows.labels.slice(0, 0, b).ne(kIgnore));
      if (needs_.wpo_weights) {
        const auto w = wpo_log_weights_of(pol, rows);
        s.weights = functional::wpo_pair_weights(w.slice(0, 0, b), w.slice(0, b, 2 * b));
      }
      if (batch.margins.defined()) s.margins = batch.margins.to(dev, torch::kFloat32);
      if (batch.magnitudes.defined()) s.magnitudes = batch.magnitudes.to(dev, torch::kFloat32);
      if (needs_.degree_variants > 0) {
        const int64_t k = needs_.degree_variants;
        TORCH_CHECK(data.degree_variants.size() == data.pairs.size(), "scoring: the loss needs ", k,
                    " graded variants of each chosen response (train::add_degree_variants), and the data has ",
                    data.degree_variants.empty() ? "none" : "variants for only some pairs");
        std::vector<std::vector<int64_t>> prompts, completions;
        for (auto i : idx) {
          const auto& variants = data.degree_variants[static_cast<size_t>(i)];
          TORCH_CHECK(static_cast<int64_t>(variants.size()) == k, "scoring: pair ", i, " has ", variants.size(),
                      " degree variants; the loss has ", k, " degrees");
          for (const auto& v : variants) {
            prompts.push_back(data.pairs[static_cast<size_t>(i)].prompt);
            completions.push_back(v);
          }
        }
        const auto variant_batch = data::collate_sequences(prompts, completions, collate);
        const Rows variant_rows = to_device(variant_batch, dev, packing);
        s.variant_mask = variant_rows.mask;
        const torch::Tensor variant_hidden = hidden_of(policy, variant_rows);
        s.variant_hidden = packing ? data::unpack(variant_rows.layout, variant_hidden) : variant_hidden;
        s.degrees = torch::arange(k, torch::TensorOptions().dtype(torch::kLong).device(dev)).repeat({b});
      }
      if (live) {
        const ModelScores ref = reference(rows, needs_.token_kl);
        std::tie(s.ref_chosen, s.ref_rejected) = pair_logps(ref, rows.labels, b, needs_.ld_alpha);
        if (needs_.token_kl) {
          const auto kl = sequence_kl_of(pol, ref, rows);
          s.chosen_kl = kl.slice(0, 0, b);
          s.rejected_kl = kl.slice(0, b, 2 * b);
        }
      } else if (needs_.reference) {
        const auto r = table_rows();
        s.ref_chosen = r.select(1, 0).contiguous();
        s.ref_rejected = r.select(1, 1).contiguous();
      }
      return s;
    }
    case DataFormat::Ranked: {
      const auto batch = data::collate_lists(gather(data.lists, idx), collate);
      const int64_t b = batch.num_lists, k = batch.list_size;
      const Rows rows = to_device(batch, dev, packing);
      ListScores s;
      if (needs_.steps) {
        s = score_steps(policy, reference_model, data, idx, batch, rows, config_);
        s.lengths = batch.completion_lengths.to(dev, torch::kFloat32).view({b, k});
        s.labels = batch.list_labels.to(dev, torch::kFloat32);
        s.mask = batch.list_mask.to(dev);
        s.labels_are_ranks = batch.label_kind == data::ListLabelKind::Ranks;
        return s;
      }
      s.policy = run_model(policy, rows, false, config_).logps.view({b, k});
      s.lengths = batch.completion_lengths.to(dev, torch::kFloat32).view({b, k});
      s.labels = batch.list_labels.to(dev, torch::kFloat32);
      s.mask = batch.list_mask.to(dev);
      s.labels_are_ranks = batch.label_kind == data::ListLabelKind::Ranks;
      if (live) {
        s.ref = reference(rows, false).logps.view({b, k});
      } else if (needs_.reference) {
        s.ref = table_rows().slice(1, 0, k).contiguous();
      }
      return s;
    }
    case DataFormat::Unpaired: {
      const auto examples = gather(data.unpaired, idx);
      const auto batch = data::collate_unpaired(examples, collate);
      const Rows rows = to_device(batch, dev, packing);
      UnpairedScores s;
      s.policy = run_model(policy, rows, false, config_).logps;
      s.desirable = batch.desirable.to(dev);
      Rows kl_rows;
      if (needs_.kl_pairs) {
        kl_rows = to_device(data::collate_unpaired(data::kto_kl_examples(examples, data.max_length), collate), dev,
                            packing);
        torch::NoGradGuard guard;  // z0 is detached in the loss anyway
        s.policy_kl = run_model(policy, kl_rows, false, config_).logps;
      }
      if (live) {
        s.ref = reference(rows, false).logps;
        if (needs_.kl_pairs) s.ref_kl = reference(kl_rows, false).logps;
      } else if (needs_.reference) {
        s.ref = table_rows().select(1, 0).contiguous();
      }
      return s;
    }
    case DataFormat::Joint: {
      // DOVE scores each (prompt, response) jointly: the labels cover the prompt's tokens after the first too.
      const auto batch = data::collate_joint_pairs(gather(data.joint, idx), collate);
      const int64_t b = batch.num_pairs;
      const Rows rows = to_device(batch, dev, packing, batch.joint_labels);
      JointScores s;
      const torch::Tensor pol = run_model(policy, rows, false, config_).logps;
      s.policy_chosen = pol.slice(0, 0, b);
      s.policy_rejected = pol.slice(0, b, 2 * b);
      if (live) {
        const torch::Tensor ref = reference(rows, false).logps;
        s.ref_chosen = ref.slice(0, 0, b);
        s.ref_rejected = ref.slice(0, b, 2 * b);
      } else if (needs_.reference) {
        const auto r = table_rows();
        s.ref_chosen = r.select(1, 0).contiguous();
        s.ref_rejected = r.select(1, 1).contiguous();
      }
      return s;
    }
    case DataFormat::Completions: {
      std::vector<std::vector<int64_t>> prompts, completions;
      for (auto i : idx) {
        prompts.push_back(data.completions[static_cast<size_t>(i)].prompt);
        completions.push_back(data.completions[static_cast<size_t>(i)].completion);
      }
      const auto batch = data::collate_sequences(prompts, completions, collate);
      const Rows rows = to_device(batch, dev, packing);
      const ModelScores pol = run_model(policy, rows, false, config_);
      CompletionScores s;
      s.policy = pol.logps;
      s.lengths = batch.completion_lengths.to(dev, torch::kFloat32);
      s.nll = mean_token_nll(pol.token_logps, rows.labels.ne(kIgnore));
      return s;
    }
  }
  TORCH_CHECK(false, "scoring: unknown data format");
}

torch::Tensor BatchScorer::reference_table(LlamaForCausalLM& reference_model, const Dataset& data, int64_t batch_size,
                                           const std::optional<std::vector<int64_t>>& rows) const {
  TORCH_CHECK(reference_tabulable(), "the reference log-probs of this loss cannot be precomputed (per-token KL or ",
              "KTO's in-batch KL pairs need the reference model at every step): use ref_model \"copy\"");
  torch::NoGradGuard guard;
  std::vector<int64_t> all;
  if (!rows) {
    all.resize(static_cast<size_t>(data.size()));
    std::iota(all.begin(), all.end(), 0);
  }
  const std::vector<int64_t>& examples = rows ? *rows : all;
  for (const int64_t i : examples) {
    TORCH_CHECK(i >= 0 && i < data.size(), "reference_table: row ", i, " is not an example of the ", data.size());
  }
  const int64_t n = static_cast<int64_t>(examples.size());
  const int64_t bs = std::max<int64_t>(1, batch_size);
  int64_t columns = data.format == DataFormat::Pairwise || data.format == DataFormat::Joint ? 2 : 1;
  for (const auto& l : data.lists) columns = std::max<int64_t>(columns, static_cast<int64_t>(l.responses.size()));
  torch::Tensor out = torch::zeros({n, columns}, torch::kFloat32);
  // The table is what score() reads from a reference it runs live: score the reference as if it were the policy.
  BatchScorer live(config_, ScoringNeeds{});
  live.needs_.ld_alpha = needs_.ld_alpha;
  AdaptersDisabled base_only(*reference_model);
  for (int64_t start = 0; start < n; start += bs) {
    const std::vector<int64_t> idx(examples.begin() + start, examples.begin() + std::min(n, start + bs));
    auto out_rows = out.slice(0, start, start + static_cast<int64_t>(idx.size()));
    const BatchScores s = live.score(reference_model, nullptr, torch::Tensor(), data, idx);
    if (const auto* p = std::get_if<PairScores>(&s)) {
      out_rows.select(1, 0).copy_(p->policy_chosen.cpu());
      out_rows.select(1, 1).copy_(p->policy_rejected.cpu());
    } else if (const auto* l = std::get_if<ListScores>(&s)) {
      out_rows.slice(1, 0, l->policy.size(1)).copy_(l->policy.cpu());
    } else if (const auto* j = std::get_if<JointScores>(&s)) {
      out_rows.select(1, 0).copy_(j->policy_chosen.cpu());
      out_rows.select(1, 1).copy_(j->policy_rejected.cpu());
    } else if (const auto* u = std::get_if<UnpairedScores>(&s)) {
      out_rows.select(1, 0).copy_(u->policy.cpu());
    } else {
      TORCH_CHECK(false, "a reference table holds pairs, ranked lists or unpaired examples, not completions");
    }
  }
  return out;
}

}  // namespace prefopt::train
