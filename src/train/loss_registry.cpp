// The loss registry: loss name + option map -> an Objective calling the prefopt loss functions. Validates keys
// and types before training starts; never computes a score or runs a model.
#include <prefopt/train/loss_registry.h>

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>

#include <c10/util/Exception.h>

#include <prefopt/losses/listwise.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/reference_free.h>
#include <prefopt/losses/token_level.h>
#include <prefopt/losses/unpaired.h>

namespace prefopt::train {

std::string OptionValue::type_name() const {
  switch (value.index()) {
    case 0: return "bool";
    case 1: return "integer";
    case 2: return "number";
    default: return "string";
  }
}

namespace {

std::string join(const std::vector<std::string>& names) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size(); ++i) out << (i ? ", " : "") << '"' << names[i] << '"';
  return out.str();
}

// Typed, key-checked access to a loss's options: every key must be among `allowed`.
class OptionReader {
 public:
  OptionReader(std::string loss, const LossOptions& options, std::vector<std::string> allowed)
      : loss_(std::move(loss)), options_(options), allowed_(std::move(allowed)) {
    std::sort(allowed_.begin(), allowed_.end());
    for (const auto& [key, value] : options_) {
      TORCH_CHECK(std::binary_search(allowed_.begin(), allowed_.end(), key), "loss \"", loss_,
                  "\": unknown option \"", key, "\"; valid options: ",
                  allowed_.empty() ? std::string("none") : join(allowed_));
    }
  }
  template <typename F>
  void real(const std::string& key, F&& set) const {
    auto it = options_.find(key);
    if (it == options_.end()) return;
    if (auto d = std::get_if<double>(&it->second.value)) return set(*d);
    if (auto i = std::get_if<int64_t>(&it->second.value)) return set(static_cast<double>(*i));
    TORCH_CHECK(false, "loss \"", loss_, "\": option \"", key, "\" must be a number, got ", it->second.type_name());
  }
  template <typename F>
  void integer(const std::string& key, F&& set) const {
    auto it = options_.find(key);
    if (it == options_.end()) return;
    if (auto i = std::get_if<int64_t>(&it->second.value)) return set(*i);
    TORCH_CHECK(false, "loss \"", loss_, "\": option \"", key, "\" must be an integer, got ",
                it->second.type_name());
  }
  template <typename F>
  void boolean(const std::string& key, F&& set) const {
    auto it = options_.find(key);
    if (it == options_.end()) return;
    if (auto b = std::get_if<bool>(&it->second.value)) return set(*b);
    TORCH_CHECK(false, "loss \"", loss_, "\": option \"", key, "\" must be a bool, got ", it->second.type_name());
  }
  template <typename F>
  void string(const std::string& key, F&& set) const {
    auto it = options_.find(key);
    if (it == options_.end()) return;
    if (auto s = std::get_if<std::string>(&it->second.value)) {
      try {
        return set(*s);
      } catch (const c10::Error& e) {
        TORCH_CHECK(false, "loss \"", loss_, "\": option \"", key, "\": ", e.msg());
      }
    }
    TORCH_CHECK(false, "loss \"", loss_, "\": option \"", key, "\" must be a string, got ", it->second.type_name());
  }

 private:
  std::string loss_;
  const LossOptions& options_;
  std::vector<std::string> allowed_;
};

void require(const torch::Tensor& t, const char* field, const std::string& loss) {
  TORCH_CHECK(t.defined(), "loss \"", loss, "\" needs ", field, ", which the trainer did not compute");
}

// ---- pairwise objectives -------------------------------------------------------------------------------------

class SFTObjective final : public Objective {
 public:
  std::string name() const override { return "sft"; }
  bool needs_reference() const override { return false; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Completions || f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    require(in.chosen_nll, "chosen_nll", name());
    require(in.policy_chosen, "policy_chosen", name());
    LossOutput out;
    out.loss = in.chosen_nll;
    auto lengths = in.chosen_lengths.defined() ? in.chosen_lengths.clamp_min(1) : torch::ones_like(in.policy_chosen);
    out.losses = -in.policy_chosen / lengths;
    out.metrics["nll_loss"] = in.chosen_nll.detach().to(torch::kFloat32);
    out.metrics["logps/chosen"] = in.policy_chosen.detach().mean().to(torch::kFloat32);
    return out;
  }
};

class DPOObjective final : public Objective {
 public:
  explicit DPOObjective(const LossOptions& o) {
    OptionReader r("dpo", o, {"loss_type", "beta", "label_smoothing", "f_divergence", "alpha_divergence_coef",
                              "discopop_tau", "bco_running_mean", "rpo_alpha", "reference_free"});
    r.string("loss_type", [&](const std::string& s) { options_.loss_type(dpo_loss_type_from_string(s)); });
    r.real("beta", [&](double v) { options_.beta(v); });
    r.real("label_smoothing", [&](double v) { options_.label_smoothing(v); });
    r.string("f_divergence", [&](const std::string& s) { options_.f_divergence(f_divergence_from_string(s)); });
    r.real("alpha_divergence_coef", [&](double v) { options_.alpha_divergence_coef(v); });
    r.real("discopop_tau", [&](double v) { options_.discopop_tau(v); });
    r.boolean("bco_running_mean", [&](bool v) { options_.bco_running_mean(v); });
    r.real("rpo_alpha", [&](double v) { options_.rpo_alpha(v); });
    r.boolean("reference_free", [&](bool v) { options_.reference_free(v); });
    loss_ = DPOLoss(options_);
  }
  std::string name() const override { return "dpo"; }
  bool needs_reference() const override { return !options_.reference_free(); }
  bool accepts(DataFormat f) const override { return f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    require(in.policy_chosen, "policy_chosen", name());
    DPOLossInputs extra;
    extra.chosen_lengths(in.chosen_lengths).rejected_lengths(in.rejected_lengths);
    if (options_.loss_type() == kSFT || options_.rpo_alpha() != 0.0) extra.chosen_nll(in.chosen_nll);
    return loss_->forward(in.policy_chosen, in.policy_rejected, in.ref_chosen, in.ref_rejected, extra);
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
  DPOLoss loss_{nullptr};
};

class SimPOObjective final : public Objective {
 public:
  explicit SimPOObjective(const LossOptions& o) {
    OptionReader r("simpo", o, {"beta", "gamma", "label_smoothing"});
    r.real("beta", [&](double v) { options_.beta(v); });
    r.real("gamma", [&](double v) { options_.gamma(v); });
    r.real("label_smoothing", [&](double v) { options_.label_smoothing(v); });
  }
  std::string name() const override { return "simpo"; }
  bool needs_reference() const override { return false; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    return functional::simpo_loss(in.policy_chosen, in.policy_rejected, in.chosen_lengths, in.rejected_lengths,
                                  options_);
  }

 private:
  SimPOLossOptions options_;
};

class CPOObjective final : public Objective {
 public:
  explicit CPOObjective(const LossOptions& o) {
    OptionReader r("cpo", o, {"loss_type", "beta", "label_smoothing", "cpo_alpha", "simpo_gamma", "alpha"});
    r.string("loss_type", [&](const std::string& s) { options_.loss_type(cpo_loss_type_from_string(s)); });
    r.real("beta", [&](double v) { options_.beta(v); });
    r.real("label_smoothing", [&](double v) { options_.label_smoothing(v); });
    r.real("cpo_alpha", [&](double v) { options_.cpo_alpha(v); });
    r.real("simpo_gamma", [&](double v) { options_.simpo_gamma(v); });
    r.real("alpha", [&](double v) { options_.alpha(v); });
  }
  std::string name() const override { return "cpo"; }
  bool needs_reference() const override { return false; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    CPOLossInputs extra;
    extra.chosen_lengths(in.chosen_lengths).rejected_lengths(in.rejected_lengths);
    if (options_.cpo_alpha() != 0.0) extra.chosen_nll(in.chosen_nll);
    return functional::cpo_loss(in.policy_chosen, in.policy_rejected, options_, extra);
  }

 private:
  CPOLossOptions options_;
};

class ORPOObjective final : public Objective {
 public:
  explicit ORPOObjective(const LossOptions& o) {
    OptionReader r("orpo", o, {"beta"});
    r.real("beta", [&](double v) { options_.beta(v); });
  }
  std::string name() const override { return "orpo"; }
  bool needs_reference() const override { return false; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    return functional::orpo_loss(in.policy_chosen, in.policy_rejected, in.chosen_lengths, in.rejected_lengths,
                                 in.chosen_nll, options_);
  }

 private:
  ORPOLossOptions options_;
};

class TDPOObjective final : public Objective {
 public:
  explicit TDPOObjective(const LossOptions& o) {
    OptionReader r("tdpo", o, {"variant", "beta", "alpha"});
    r.string("variant", [&](const std::string& s) { options_.variant(tdpo_variant_from_string(s)); });
    r.real("beta", [&](double v) { options_.beta(v); });
    r.real("alpha", [&](double v) { options_.alpha(v); });
  }
  std::string name() const override { return "tdpo"; }
  bool needs_reference() const override { return true; }
  bool needs_token_kl() const override { return true; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Pairwise; }
  LossOutput compute(const ObjectiveInputs& in) override {
    require(in.chosen_kl, "chosen_kl", name());
    return functional::tdpo_loss(in.policy_chosen, in.policy_rejected, in.ref_chosen, in.ref_rejected, in.chosen_kl,
                                 in.rejected_kl, options_);
  }

 private:
  TDPOLossOptions options_;
};

// ---- unpaired ------------------------------------------------------------------------------------------------

class KTOObjective final : public Objective {
 public:
  explicit KTOObjective(const LossOptions& o) {
    OptionReader r("kto", o, {"loss_type", "beta", "desirable_weight", "undesirable_weight"});
    r.string("loss_type", [&](const std::string& s) { options_.loss_type(kto_loss_type_from_string(s)); });
    r.real("beta", [&](double v) { options_.beta(v); });
    r.real("desirable_weight", [&](double v) { options_.desirable_weight(v); });
    r.real("undesirable_weight", [&](double v) { options_.undesirable_weight(v); });
  }
  std::string name() const override { return "kto"; }
  bool needs_reference() const override { return true; }
  bool needs_kl_pairs() const override { return options_.loss_type() == kKTO; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Unpaired; }
  LossOutput compute(const ObjectiveInputs& in) override {
    KTOLossInputs extra;
    if (needs_kl_pairs()) extra.policy_kl_logps(in.policy_kl).ref_kl_logps(in.ref_kl);
    return functional::kto_loss(in.policy, in.ref, in.desirable, options_, extra);
  }

 private:
  KTOLossOptions options_;
};

// ---- lists ---------------------------------------------------------------------------------------------------

template <typename Options, typename Fn>
class ListObjective final : public Objective {
 public:
  ListObjective(std::string name, Options options, bool needs_ref, bool uses_lengths, Fn fn)
      : name_(std::move(name)), options_(options), needs_ref_(needs_ref), uses_lengths_(uses_lengths), fn_(fn) {}
  std::string name() const override { return name_; }
  bool needs_reference() const override { return needs_ref_; }
  bool accepts(DataFormat f) const override { return f == DataFormat::Ranked; }
  LossOutput compute(const ObjectiveInputs& in) override {
    require(in.policy_lists, "policy_lists", name_);
    Options options = options_;
    options.labels(in.list_labels_are_ranks ? kRanks : kGrades);
    return fn_(in, options);
  }

 private:
  std::string name_;
  Options options_;
  bool needs_ref_, uses_lengths_;
  Fn fn_;
};

template <typename Options, typename Fn>
std::unique_ptr<Objective> make_list(std::string name, Options options, bool needs_ref, Fn fn) {
  return std::make_unique<ListObjective<Options, Fn>>(std::move(name), options, needs_ref, false, fn);
}

using Factory = std::function<std::unique_ptr<Objective>(const LossOptions&)>;

const std::map<std::string, std::pair<std::vector<std::string>, Factory>>& registry() {
  static const std::map<std::string, std::pair<std::vector<std::string>, Factory>> table = {
      {"sft", {{}, [](const LossOptions& o) {
                 OptionReader("sft", o, {});
                 return std::unique_ptr<Objective>(std::make_unique<SFTObjective>());
               }}},
      {"dpo", {{"loss_type", "beta", "label_smoothing", "f_divergence", "alpha_divergence_coef", "discopop_tau",
                "bco_running_mean", "rpo_alpha", "reference_free"},
               [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<DPOObjective>(o)); }}},
      {"simpo", {{"beta", "gamma", "label_smoothing"},
                 [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<SimPOObjective>(o)); }}},
      {"cpo", {{"loss_type", "beta", "label_smoothing", "cpo_alpha", "simpo_gamma", "alpha"},
               [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<CPOObjective>(o)); }}},
      {"orpo", {{"beta"},
                [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<ORPOObjective>(o)); }}},
      {"tdpo", {{"variant", "beta", "alpha"},
                [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<TDPOObjective>(o)); }}},
      {"kto", {{"loss_type", "beta", "desirable_weight", "undesirable_weight"},
               [](const LossOptions& o) { return std::unique_ptr<Objective>(std::make_unique<KTOObjective>(o)); }}},
      {"pro", {{"sft_weight", "length_normalize"},
               [](const LossOptions& o) {
                 PROLossOptions opt;
                 OptionReader r("pro", o, {"sft_weight", "length_normalize"});
                 r.real("sft_weight", [&](double v) { opt.sft_weight(v); });
                 r.boolean("length_normalize", [&](bool v) { opt.length_normalize(v); });
                 return make_list("pro", opt, false, [](const ObjectiveInputs& in, const PROLossOptions& p) {
                   return functional::pro_loss(in.policy_lists, in.list_lengths, in.list_labels, in.list_mask, p);
                 });
               }}},
      {"lipo_lambda", {{"beta", "lambda_weighting", "reference_free"},
                       [](const LossOptions& o) {
                         LiPOLambdaLossOptions opt;
                         OptionReader r("lipo_lambda", o, {"beta", "lambda_weighting", "reference_free"});
                         r.real("beta", [&](double v) { opt.beta(v); });
                         r.boolean("lambda_weighting", [&](bool v) { opt.lambda_weighting(v); });
                         r.boolean("reference_free", [&](bool v) { opt.reference_free(v); });
                         return make_list("lipo_lambda", opt, !opt.reference_free(),
                                          [](const ObjectiveInputs& in, const LiPOLambdaLossOptions& p) {
                                            return functional::lipo_lambda_loss(in.policy_lists, in.ref_lists,
                                                                                in.list_labels, in.list_mask, p);
                                          });
                       }}},
      {"plackett_luce", {{"beta", "top_m", "reference_free"},
                         [](const LossOptions& o) {
                           PlackettLuceLossOptions opt;
                           OptionReader r("plackett_luce", o, {"beta", "top_m", "reference_free"});
                           r.real("beta", [&](double v) { opt.beta(v); });
                           r.integer("top_m", [&](int64_t v) { opt.top_m(v); });
                           r.boolean("reference_free", [&](bool v) { opt.reference_free(v); });
                           return make_list("plackett_luce", opt, !opt.reference_free(),
                                            [](const ObjectiveInputs& in, const PlackettLuceLossOptions& p) {
                                              return functional::plackett_luce_loss(in.policy_lists, in.ref_lists,
                                                                                    in.list_labels, in.list_mask, p);
                                            });
                         }}},
      {"all_pairs", {{"beta", "reference_free"},
                     [](const LossOptions& o) {
                       AllPairsLossOptions opt;
                       OptionReader r("all_pairs", o, {"beta", "reference_free"});
                       r.real("beta", [&](double v) { opt.beta(v); });
                       r.boolean("reference_free", [&](bool v) { opt.reference_free(v); });
                       return make_list("all_pairs", opt, !opt.reference_free(),
                                        [](const ObjectiveInputs& in, const AllPairsLossOptions& p) {
                                          return functional::all_pairs_loss(in.policy_lists, in.ref_lists,
                                                                            in.list_labels, in.list_mask, p);
                                        });
                     }}},
  };
  return table;
}

}  // namespace

std::vector<std::string> registered_losses() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : registry()) names.push_back(name);
  return names;
}

std::vector<std::string> loss_option_keys(const std::string& name) {
  auto it = registry().find(name);
  TORCH_CHECK(it != registry().end(), "unknown loss \"", name, "\"; valid losses: ", join(registered_losses()));
  auto keys = it->second.first;
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::unique_ptr<Objective> make_objective(const std::string& name, const LossOptions& options) {
  auto it = registry().find(name);
  TORCH_CHECK(it != registry().end(), "unknown loss \"", name, "\"; valid losses: ", join(registered_losses()));
  return it->second.second(options);
}

}  // namespace prefopt::train
