// The loss registry: one entry per trainable loss (name, summary, data format, declared options, factory), from
// which make_objective, the option checks and the run-config documentation table are all derived. Never computes
// a score or runs a model.
#include <prefopt/train/loss_registry.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include <c10/util/Exception.h>

#include <prefopt/losses/degree.h>
#include <prefopt/losses/joint.h>
#include <prefopt/losses/listwise.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/reference_free.h>
#include <prefopt/losses/reward.h>
#include <prefopt/losses/token_level.h>
#include <prefopt/losses/unpaired.h>
#include <prefopt/model/sequence_classifier.h>
#include <torch/nn/init.h>

namespace prefopt::train {

namespace {

std::string context(const std::string& loss) { return "loss \"" + loss + "\": "; }

template <typename Options>
Options read(const std::string& loss, const LossOptions& given, const std::vector<std::string>& extra_keys = {}) {
  Options options;
  read_options(options, given, context(loss), extra_keys);
  return options;
}

template <typename Scores>
const Scores& scores_of(const BatchScores& scores, const std::string& loss, DataFormat format) {
  const Scores* s = std::get_if<Scores>(&scores);
  TORCH_CHECK(s != nullptr, context(loss), "trains on ", to_string(format), " data; the batch holds other scores");
  return *s;
}

void require(const torch::Tensor& t, const char* field, const std::string& loss) {
  TORCH_CHECK(t.defined(), context(loss), "needs ", field, ", which the trainer did not compute");
}

// A stateless loss: options read once, a function of (scores, options).
template <typename Options, typename Scores>
class FunctionObjective final : public Objective {
 public:
  using Fn = std::function<LossOutput(const Scores&, const Options&)>;
  FunctionObjective(std::string name, DataFormat format, Options options, ScoringNeeds needs, Fn fn)
      : name_(std::move(name)), format_(format), options_(std::move(options)), needs_(needs), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  DataFormat format() const override { return format_; }
  ScoringNeeds needs() const override { return needs_; }
  LossOutput compute(const BatchScores& scores) override {
    const Scores& s = scores_of<Scores>(scores, name_, format_);
    if (needs_.reference) {
      if constexpr (std::is_same_v<Scores, ListScores> || std::is_same_v<Scores, UnpairedScores>) {
        require(s.ref, "reference log-probs", name_);
      } else if constexpr (std::is_same_v<Scores, PairScores> || std::is_same_v<Scores, JointScores>) {
        require(s.ref_chosen, "reference log-probs", name_);
      }
    }
    return fn_(s, options_);
  }

 private:
  std::string name_;
  DataFormat format_;
  Options options_;
  ScoringNeeds needs_;
  Fn fn_;
};

template <typename Options, typename Scores, typename Fn>
std::unique_ptr<Objective> function_objective(const std::string& name, DataFormat format, Options options,
                                              ScoringNeeds needs, Fn fn) {
  return std::make_unique<FunctionObjective<Options, Scores>>(name, format, std::move(options), needs,
                                                              typename FunctionObjective<Options, Scores>::Fn(fn));
}

// DPO keeps BCO's running mean as module state, and its scoring options (WPO, LD-DPO) shape the trainer's scores.
class DPOObjective final : public Objective {
 public:
  explicit DPOObjective(const LossOptions& given) {
    std::vector<std::string> loss_keys, scoring_keys;
    for (const auto& spec : option_specs<DPOLossOptions>()) loss_keys.push_back(spec.name);
    for (const auto& spec : option_specs<DPOScoringOptions>()) scoring_keys.push_back(spec.name);
    options_ = read<DPOLossOptions>("dpo", given, scoring_keys);
    scoring_ = read<DPOScoringOptions>("dpo", given, loss_keys);
    TORCH_CHECK(scoring_.ld_alpha() > 0.0 && scoring_.ld_alpha() <= 1.0, context("dpo"),
                "option \"ld_alpha\" must be in (0, 1], got ", scoring_.ld_alpha());
    TORCH_CHECK(!(scoring_.use_weighting() && (options_.loss_type() == kAOT || options_.loss_type() == kAOTUnpaired)),
                context("dpo"), "option \"use_weighting\" (WPO) does not apply to loss_type ",
                to_string(options_.loss_type()), ", which sorts the batch");
    loss_ = DPOLoss(options_);
  }
  std::string name() const override { return "dpo"; }
  DataFormat format() const override { return DataFormat::Pairwise; }
  ScoringNeeds needs() const override {
    ScoringNeeds n;
    n.reference = !options_.reference_free();
    n.wpo_weights = scoring_.use_weighting();
    n.ld_alpha = scoring_.ld_alpha();
    return n;
  }
  LossOutput compute(const BatchScores& scores) override {
    const auto& s = scores_of<PairScores>(scores, name(), format());
    DPOLossInputs extra;
    extra.chosen_lengths(s.chosen_lengths).rejected_lengths(s.rejected_lengths);
    if (options_.loss_type() == kSFT || options_.rpo_alpha() != 0.0) extra.chosen_nll(s.chosen_nll);
    if (scoring_.use_weighting()) {
      require(s.weights, "WPO weights", name());
      extra.weights(s.weights);
    }
    extra.bco_global_batch_mean(mean_over_ranks_);
    return loss_->forward(s.policy_chosen, s.policy_rejected, s.ref_chosen, s.ref_rejected, extra);
  }
  std::map<std::string, torch::Tensor> state() const override {
    return {{"bco_running_mean", loss_->bco_running_mean.detach().clone()},
            {"bco_running_count", loss_->bco_running_count.detach().clone()}};
  }
  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    torch::NoGradGuard guard;
    if (auto it = state.find("bco_running_mean"); it != state.end()) loss_->bco_running_mean.copy_(it->second);
    if (auto it = state.find("bco_running_count"); it != state.end()) loss_->bco_running_count.copy_(it->second);
  }

 private:
  DPOLossOptions options_;
  DPOScoringOptions scoring_;
  DPOLoss loss_{nullptr};
};

// A reward model: the policy's decoder with a scalar score head (transformers' LlamaForSequenceClassification),
// trained with the Bradley-Terry family on the heads' rewards of chosen and rejected.
class RewardObjective final : public Objective {
 public:
  explicit RewardObjective(const LossOptions& given) : options_(read<RewardLossOptions>("reward", given)) {}
  std::string name() const override { return "reward"; }
  DataFormat format() const override { return DataFormat::Pairwise; }
  ScoringNeeds needs() const override {
    ScoringNeeds n;
    n.pooled_hidden = true;
    return n;
  }
  void bind(const LlamaForCausalLMImpl& model) override {
    TORCH_CHECK(model.config().pad_token_id().has_value(), context("reward"),
                "the score is read at each sequence's last non-pad token, as transformers reads it, so the model's ",
                "config needs a pad_token_id");
    const auto like = model.model->embed_tokens->weight;
    head_ = torch::empty({1, model.config().hidden_size()}, like.options()).requires_grad_(true);
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(head_, 0.0, model.config().initializer_range());
  }
  std::vector<torch::Tensor> parameters() const override { return {head_}; }
  LossOutput compute(const BatchScores& scores) override {
    const auto& s = scores_of<PairScores>(scores, name(), format());
    require(s.chosen_hidden, "pooled hidden states", name());
    TORCH_CHECK(head_.defined(), context("reward"), "bind() was not called with the model");
    const auto rc = at::linear(s.chosen_hidden, head_).squeeze(-1);
    const auto rr = at::linear(s.rejected_hidden, head_).squeeze(-1);
    RewardLossInputs extra;
    if (options_.loss_type() == kMarginBT) {
      TORCH_CHECK(s.margins.defined(), context("reward"), "loss_type margin needs a \"margin\" for every pair of ",
                  "the data, and this batch has none");
      extra.margin(s.margins.to(rc.scalar_type()));
    }
    if (options_.loss_type() == kScaledBT) {
      TORCH_CHECK(s.magnitudes.defined(), context("reward"), "loss_type scaled needs a \"magnitude\" for every ",
                  "pair of the data, and this batch has none");
      extra.magnitude(s.magnitudes.to(rc.scalar_type()));
    }
    return functional::reward_loss(rc, rr, options_, extra);
  }
  std::map<std::string, torch::Tensor> state() const override {
    if (!head_.defined()) return {};
    return {{"score.weight", head_.detach().clone()}};
  }
  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    auto it = state.find("score.weight");
    TORCH_CHECK(it != state.end() && head_.defined() && it->second.sizes() == head_.sizes(), context("reward"),
                "the checkpoint's loss_state.pt holds no score head of shape ", head_.sizes());
    torch::NoGradGuard no_grad;
    head_.copy_(it->second);
  }
  void save_model(const LlamaForCausalLMImpl& model, const std::string& directory,
                  std::optional<torch::Dtype> dtype) const override {
    save_llama_sequence_classifier(*model.model, head_, model.config(), directory, dtype);
  }

 private:
  RewardLossOptions options_;
  torch::Tensor head_;
};

// SPO: the DPO-family loss it wraps plus a degree head that classifies how much of each chosen response's key
// content its graded variants keep (L = L_align + lambda L_degree).
class SPOObjective final : public Objective {
 public:
  explicit SPOObjective(const LossOptions& given) {
    std::vector<std::string> spo, dpo, training;
    for (const auto& s : option_specs<SPOLossOptions>()) spo.push_back(s.name);
    for (const auto& s : option_specs<DPOLossOptions>()) dpo.push_back(s.name);
    for (const auto& s : option_specs<SPOTrainingOptions>()) training.push_back(s.name);
    auto others = [](std::vector<std::string> a, const std::vector<std::string>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    // label_smoothing is declared by both SPOLoss (the degree cross-entropy) and DPO: here it is SPO's.
    std::vector<std::string> dpo_keys;
    for (const auto& k : dpo) {
      if (k != "label_smoothing") dpo_keys.push_back(k);
    }
    LossOptions align_given;
    for (const auto& [k, v] : given) {
      if (std::find(dpo_keys.begin(), dpo_keys.end(), k) != dpo_keys.end()) align_given.emplace(k, v);
    }
    options_ = read<SPOLossOptions>("spo", given, others(dpo_keys, training));
    training_ = read<SPOTrainingOptions>("spo", given, others(dpo_keys, spo));
    align_options_ = read<DPOLossOptions>("spo", align_given);
    TORCH_CHECK(training_.num_degrees() >= 2, context("spo"), "option \"num_degrees\" must be >= 2, got ",
                training_.num_degrees());
    align_ = DPOLoss(align_options_);
  }
  std::string name() const override { return "spo"; }
  DataFormat format() const override { return DataFormat::Pairwise; }
  ScoringNeeds needs() const override {
    ScoringNeeds n;
    n.reference = !align_options_.reference_free();
    n.degree_variants = training_.num_degrees();
    return n;
  }
  void bind(const LlamaForCausalLMImpl& model) override {
    head_ = DegreeHead(DegreeHeadOptions(model.config().hidden_size(), training_.num_degrees())
                           .pooling(training_.pooling()));
    const auto like = model.model->embed_tokens->weight;
    head_->to(like.device(), like.scalar_type());
  }
  std::vector<torch::Tensor> parameters() const override { return head_ ? head_->parameters() : std::vector<torch::Tensor>{}; }
  LossOutput compute(const BatchScores& scores) override {
    const auto& s = scores_of<PairScores>(scores, name(), format());
    require(s.variant_hidden, "the hidden states of the graded variants", name());
    TORCH_CHECK(head_, context("spo"), "bind() was not called with the model");
    DPOLossInputs extra;
    extra.chosen_lengths(s.chosen_lengths).rejected_lengths(s.rejected_lengths);
    if (align_options_.loss_type() == kSFT || align_options_.rpo_alpha() != 0.0) extra.chosen_nll(s.chosen_nll);
    extra.bco_global_batch_mean(mean_over_ranks_);
    const LossOutput align = align_->forward(s.policy_chosen, s.policy_rejected, s.ref_chosen, s.ref_rejected, extra);
    return functional::spo_loss(align, head_(s.variant_hidden, s.variant_mask), s.degrees, options_);
  }
  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out = {{"bco_running_mean", align_->bco_running_mean.detach().clone()},
                                                {"bco_running_count", align_->bco_running_count.detach().clone()}};
    if (head_) {
      for (const auto& p : head_->named_parameters()) out["degree_head." + p.key()] = p.value().detach().clone();
    }
    return out;
  }
  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    torch::NoGradGuard guard;
    if (auto it = state.find("bco_running_mean"); it != state.end()) align_->bco_running_mean.copy_(it->second);
    if (auto it = state.find("bco_running_count"); it != state.end()) align_->bco_running_count.copy_(it->second);
    if (!head_) return;
    for (auto& p : head_->named_parameters()) {
      auto it = state.find("degree_head." + p.key());
      TORCH_CHECK(it != state.end() && it->second.sizes() == p.value().sizes(), context("spo"),
                  "the checkpoint's loss_state.pt holds no degree head parameter ", p.key(), " of shape ",
                  p.value().sizes());
      p.value().copy_(it->second);
    }
  }

 private:
  SPOLossOptions options_;
  SPOTrainingOptions training_;
  DPOLossOptions align_options_;
  DPOLoss align_{nullptr};
  DegreeHead head_{nullptr};
};

struct NoOptions {};

LossOutput sft(const CompletionScores& s) {
  LossOutput out;
  out.loss = s.nll;
  out.losses = -s.policy / s.lengths.clamp_min(1);
  out.metrics["nll_loss"] = s.nll.detach().to(torch::kFloat32);
  out.metrics["logps/chosen"] = s.policy.detach().mean().to(torch::kFloat32);
  return out;
}

// The list losses set their label kind from the data.
template <typename Options>
Options with_labels(Options options, const ListScores& s) {
  return options.labels(s.labels_are_ranks ? kRanks : kGrades);
}

ScoringNeeds reference_if(bool needed) {
  ScoringNeeds n;
  n.reference = needed;
  return n;
}

using Factory = std::function<std::unique_ptr<Objective>(const LossOptions&)>;

struct Entry {
  LossInfo info;
  Factory make;
};

template <typename Options>
std::vector<OptionSpec> specs() {
  return option_specs<Options>();
}

std::vector<Entry> build_entries() {
  std::vector<Entry> e;
  e.push_back({{"sft", "Supervised fine-tuning: the mean token NLL of the completions (pairs: of the chosen).",
                DataFormat::Completions, {}},
               [](const LossOptions& o) {
                 options_detail::check_keys(o, {}, context("sft"));
                 return function_objective<NoOptions, CompletionScores>(
                     "sft", DataFormat::Completions, NoOptions{}, {},
                     [](const CompletionScores& s, const NoOptions&) { return sft(s); });
               }});
  {
    auto options = specs<DPOLossOptions>();
    for (auto& s : specs<DPOScoringOptions>()) options.push_back(s);
    e.push_back({{"dpo", "The DPO family: every TRL loss_type, f-divergences, RPO, WPO and LD-DPO.",
                  DataFormat::Pairwise, options},
                 [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<DPOObjective>(o)); }});
  }
  e.push_back({{"simpo", "SimPO: length-normalised reference-free margin loss.", DataFormat::Pairwise,
                specs<SimPOLossOptions>()},
               [](const LossOptions& o) {
                 return function_objective<SimPOLossOptions, PairScores>(
                     "simpo", DataFormat::Pairwise, read<SimPOLossOptions>("simpo", o), {},
                     [](const PairScores& s, const SimPOLossOptions& p) {
                       return functional::simpo_loss(s.policy_chosen, s.policy_rejected, s.chosen_lengths,
                                                     s.rejected_lengths, p);
                     });
               }});
  e.push_back({{"cpo", "CPO (and CPO-SimPO, AlphaPO): reference-free DPO with an NLL term.", DataFormat::Pairwise,
                specs<CPOLossOptions>()},
               [](const LossOptions& o) {
                 return function_objective<CPOLossOptions, PairScores>(
                     "cpo", DataFormat::Pairwise, read<CPOLossOptions>("cpo", o), {},
                     [](const PairScores& s, const CPOLossOptions& p) {
                       CPOLossInputs extra;
                       extra.chosen_lengths(s.chosen_lengths).rejected_lengths(s.rejected_lengths);
                       if (p.cpo_alpha() != 0.0) extra.chosen_nll(s.chosen_nll);
                       return functional::cpo_loss(s.policy_chosen, s.policy_rejected, p, extra);
                     });
               }});
  e.push_back({{"orpo", "ORPO: NLL plus an odds-ratio preference term, no reference.", DataFormat::Pairwise,
                specs<ORPOLossOptions>()},
               [](const LossOptions& o) {
                 return function_objective<ORPOLossOptions, PairScores>(
                     "orpo", DataFormat::Pairwise, read<ORPOLossOptions>("orpo", o), {},
                     [](const PairScores& s, const ORPOLossOptions& p) {
                       return functional::orpo_loss(s.policy_chosen, s.policy_rejected, s.chosen_lengths,
                                                    s.rejected_lengths, s.chosen_nll, p);
                     });
               }});
  e.push_back({{"tdpo", "TDPO: DPO with the sequences' per-token KL to the reference (needs ref_model copy).",
                DataFormat::Pairwise, specs<TDPOLossOptions>()},
               [](const LossOptions& o) {
                 ScoringNeeds n;
                 n.reference = n.token_kl = true;
                 return function_objective<TDPOLossOptions, PairScores>(
                     "tdpo", DataFormat::Pairwise, read<TDPOLossOptions>("tdpo", o), n,
                     [](const PairScores& s, const TDPOLossOptions& p) {
                       require(s.chosen_kl, "per-token KL", "tdpo");
                       return functional::tdpo_loss(s.policy_chosen, s.policy_rejected, s.ref_chosen, s.ref_rejected,
                                                    s.chosen_kl, s.rejected_kl, p);
                     });
               }});
  e.push_back({{"kto", "KTO on unpaired examples; the KL baseline pairs each prompt with the completion of the "
                       "previous example of the same micro-batch, as TRL's KL dataset does.",
                DataFormat::Unpaired, specs<KTOLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<KTOLossOptions>("kto", o);
                 ScoringNeeds n;
                 n.reference = true;
                 n.kl_pairs = options.loss_type() == kKTO;
                 return function_objective<KTOLossOptions, UnpairedScores>(
                     "kto", DataFormat::Unpaired, options, n, [](const UnpairedScores& s, const KTOLossOptions& p) {
                       KTOLossInputs extra;
                       if (p.loss_type() == kKTO) {
                         if (s.kl.defined()) {
                           extra.kl(s.kl);
                         } else {
                           extra.policy_kl_logps(s.policy_kl).ref_kl_logps(s.ref_kl);
                         }
                       }
                       return functional::kto_loss(s.policy, s.ref, s.desirable, p, extra);
                     });
               }});
  e.push_back({{"pro", "PRO: listwise ranking by successive softmaxes with an SFT term; no reference.",
                DataFormat::Ranked, specs<PROLossOptions>()},
               [](const LossOptions& o) {
                 return function_objective<PROLossOptions, ListScores>(
                     "pro", DataFormat::Ranked, read<PROLossOptions>("pro", o), {},
                     [](const ListScores& s, const PROLossOptions& p) {
                       return functional::pro_loss(s.policy, s.lengths, s.labels, s.mask, with_labels(p, s));
                     });
               }});
  e.push_back({{"lipo_lambda", "LiPO-lambda: lambda-weighted pairwise logistic loss over a ranked list.",
                DataFormat::Ranked, specs<LiPOLambdaLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<LiPOLambdaLossOptions>("lipo_lambda", o);
                 return function_objective<LiPOLambdaLossOptions, ListScores>(
                     "lipo_lambda", DataFormat::Ranked, options, reference_if(!options.reference_free()),
                     [](const ListScores& s, const LiPOLambdaLossOptions& p) {
                       return functional::lipo_lambda_loss(s.policy, s.ref, s.labels, s.mask, with_labels(p, s));
                     });
               }});
  e.push_back({{"plackett_luce", "Plackett-Luce (listwise DPO) over the label order.", DataFormat::Ranked,
                specs<PlackettLuceLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<PlackettLuceLossOptions>("plackett_luce", o);
                 return function_objective<PlackettLuceLossOptions, ListScores>(
                     "plackett_luce", DataFormat::Ranked, options, reference_if(!options.reference_free()),
                     [](const ListScores& s, const PlackettLuceLossOptions& p) {
                       return functional::plackett_luce_loss(s.policy, s.ref, s.labels, s.mask, with_labels(p, s));
                     });
               }});
  e.push_back({{"all_pairs", "DPO on every ordered pair of a ranked list.", DataFormat::Ranked,
                specs<AllPairsLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<AllPairsLossOptions>("all_pairs", o);
                 return function_objective<AllPairsLossOptions, ListScores>(
                     "all_pairs", DataFormat::Ranked, options, reference_if(!options.reference_free()),
                     [](const ListScores& s, const AllPairsLossOptions& p) {
                       return functional::all_pairs_loss(s.policy, s.ref, s.labels, s.mask, with_labels(p, s));
                     });
               }});
  e.push_back({{"irpo", "IRPO: each response against the mean of the others, DCG-weighted.", DataFormat::Ranked,
                specs<IRPOLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<IRPOLossOptions>("irpo", o);
                 return function_objective<IRPOLossOptions, ListScores>(
                     "irpo", DataFormat::Ranked, options, reference_if(!options.reference_free()),
                     [](const ListScores& s, const IRPOLossOptions& p) {
                       return functional::irpo_loss(s.policy, s.ref, s.labels, s.mask, s.lengths, with_labels(p, s));
                     });
               }});
  e.push_back({{"ranklist", "RankList: pairwise ranking over local and non-local pairs, optionally skip-wise "
                            "(window) and with a label margin.",
                DataFormat::Ranked, specs<RankListLossOptions>()},
               [](const LossOptions& o) {
                 const auto options = read<RankListLossOptions>("ranklist", o);
                 return function_objective<RankListLossOptions, ListScores>(
                     "ranklist", DataFormat::Ranked, options, reference_if(!options.reference_free()),
                     [](const ListScores& s, const RankListLossOptions& p) {
                       return functional::ranklist_loss(s.policy, s.ref, s.labels, s.mask, with_labels(p, s));
                     });
               }});
  {
    auto options = specs<SPOLossOptions>();
    for (auto& s : specs<SPOTrainingOptions>()) options.push_back(s);
    for (auto& s : specs<DPOLossOptions>()) {
      if (s.name != "label_smoothing") options.push_back(s);
    }
    e.push_back({{"spo", "SPO: a DPO-family loss plus a degree head that learns how much key content graded "
                         "variants of the chosen response keep (the augmenter removes key phrases).",
                  DataFormat::Pairwise, options},
                 [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<SPOObjective>(o)); }});
  }
  e.push_back({{"dove", "DOVE: DPO on joint log-probs of (prompt, response) pairs with different prompts.",
                DataFormat::Joint, specs<JointDPOLossOptions>()},
               [](const LossOptions& o) {
                 return function_objective<JointDPOLossOptions, JointScores>(
                     "dove", DataFormat::Joint, read<JointDPOLossOptions>("dove", o), reference_if(true),
                     [](const JointScores& s, const JointDPOLossOptions& p) {
                       return functional::joint_dpo_loss(s.policy_chosen, s.policy_rejected, s.ref_chosen,
                                                         s.ref_rejected, p);
                     });
               }});
  {
    auto options = specs<TPOLossOptions>();
    for (auto& s : specs<TPOTrainingOptions>()) options.push_back(s);
    e.push_back({{"tpo", "TPO: each response of a ranked list cut into steps, step log-ratios weighted by how close "
                         "each step's hidden state is to the best response's, then LiPO-lambda over the lists.",
                  DataFormat::Ranked, options},
                 [](const LossOptions& o) {
                   std::vector<std::string> loss_keys, training_keys;
                   for (const auto& s : option_specs<TPOLossOptions>()) loss_keys.push_back(s.name);
                   for (const auto& s : option_specs<TPOTrainingOptions>()) training_keys.push_back(s.name);
                   const auto options = read<TPOLossOptions>("tpo", o, training_keys);
                   const auto training = read<TPOTrainingOptions>("tpo", o, loss_keys);
                   TORCH_CHECK(!training.step_delimiter().empty(), context("tpo"),
                               "option \"step_delimiter\" must not be empty");
                   ScoringNeeds n;
                   n.reference = n.steps = true;
                   n.step_delimiter = training.step_delimiter();
                   return function_objective<TPOLossOptions, ListScores>(
                       "tpo", DataFormat::Ranked, options, n, [](const ListScores& s, const TPOLossOptions& p) {
                         require(s.policy_steps, "step scores", "tpo");
                         const auto opts = with_labels(p, s);
                         const auto weights =
                             functional::tpo_step_weights(s.step_embeddings, s.step_mask, s.labels, s.mask, opts.labels());
                         return functional::tpo_loss(s.policy_steps, s.ref_steps, s.step_mask, weights, s.labels, s.mask,
                                                     opts);
                       });
                 }});
  }
  e.push_back({{"reward", "A reward model (Bradley-Terry, with margin, or scaled): the decoder with a scalar score "
                          "head at the last token, saved as transformers' *ForSequenceClassification.",
                DataFormat::Pairwise, specs<RewardLossOptions>()},
               [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<RewardObjective>(o)); }});
  std::sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) { return a.info.name < b.info.name; });
  return e;
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = build_entries();
  return table;
}

const Entry& entry(const std::string& name) {
  for (const auto& e : entries()) {
    if (e.info.name == name) return e;
  }
  std::ostringstream valid;
  for (size_t i = 0; i < entries().size(); ++i) valid << (i ? ", " : "") << '"' << entries()[i].info.name << '"';
  TORCH_CHECK(false, "unknown loss \"", name, "\"; valid losses: ", valid.str());
}

// A markdown table cell: pipes would end the cell.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

void Objective::save_model(const LlamaForCausalLMImpl& model, const std::string& directory,
                           std::optional<torch::Dtype> dtype) const {
  save_llama(model, directory, dtype);
}

const std::vector<LossInfo>& registered_loss_infos() {
  static const std::vector<LossInfo> infos = [] {
    std::vector<LossInfo> out;
    for (const auto& e : entries()) out.push_back(e.info);
    return out;
  }();
  return infos;
}

std::vector<std::string> registered_losses() {
  std::vector<std::string> names;
  for (const auto& e : entries()) names.push_back(e.info.name);
  return names;
}

std::vector<std::string> loss_option_keys(const std::string& name) {
  std::vector<std::string> keys;
  for (const auto& spec : entry(name).info.options) keys.push_back(spec.name);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string loss_options_markdown() {
  std::ostringstream out;
  out << "| loss | data | what it is |\n|------|------|------------|\n";
  for (const auto& e : entries()) {
    out << "| `" << e.info.name << "` | " << to_string(e.info.format) << " | " << cell(e.info.summary) << " |\n";
  }
  for (const auto& e : entries()) {
    out << "\n`" << e.info.name << "` options";
    if (e.info.options.empty()) {
      out << ": none.\n";
      continue;
    }
    out << ":\n\n| option | type | default | meaning |\n|--------|------|---------|---------|\n";
    for (const auto& spec : e.info.options) {
      std::string type = spec.config_type();
      if (spec.kind == OptionKind::Choice) {
        type += ": ";
        for (size_t i = 0; i < spec.choices.size(); ++i) type += (i ? ", `" : "`") + spec.choices[i] + "`";
      }
      out << "| `" << spec.name << "` | " << type << " | `" << spec.default_value.to_json() << "` | "
          << cell(spec.doc) << " |\n";
    }
  }
  return out.str();
}

std::unique_ptr<Objective> make_objective(const std::string& name, const LossOptions& options) {
  return entry(name).make(options);
}

}  // namespace prefopt::train
