// Listwise and ranking losses over [B, K] scores (LOSSES.md section 5). Each loss turns its inputs into
// scores s and a pair structure (which pairs count, with which detached weight) and hands the pair sums to
// pairwise_sums.h, the seam for the fused pairwise-margin kernel. Arithmetic in float32 (float64 for
// float64 inputs); invalid (masked) entries are replaced by 0 before any arithmetic, so nothing they hold
// reaches a loss, a gradient or a metric.
#include <prefopt/losses/listwise.h>

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <ATen/OpMathType.h>

#include "../common/list_checks.h"
#include "../common/pairwise_sums.h"
#include "../common/ranking.h"
#include "reduction.h"
#include "../common/score_checks.h"

namespace prefopt {

std::string to_string(ListLabels labels) { return labels == ListLabels::Ranks ? "ranks" : "grades"; }

ListLabels list_labels_from_string(std::string_view name) {
  if (name == "grades") return ListLabels::Grades;
  if (name == "ranks") return ListLabels::Ranks;
  TORCH_CHECK(false, "labels must be one of: grades, ranks; got '", name, "'");
}

std::string to_string(IRPOWeighting weighting) {
  switch (weighting) {
    case IRPOWeighting::DCG:
      return "dcg";
    case IRPOWeighting::Discount:
      return "discount";
    case IRPOWeighting::LinearDiscount:
      return "linear_discount";
    case IRPOWeighting::Uniform:
      return "uniform";
  }
  TORCH_CHECK(false, "unknown IRPOWeighting ", static_cast<int>(weighting));
}

IRPOWeighting irpo_weighting_from_string(std::string_view name) {
  if (name == "dcg") return IRPOWeighting::DCG;
  if (name == "discount") return IRPOWeighting::Discount;
  if (name == "linear_discount") return IRPOWeighting::LinearDiscount;
  if (name == "uniform") return IRPOWeighting::Uniform;
  TORCH_CHECK(false, "weighting must be one of: dcg, discount, linear_discount, uniform; got '", name, "'");
}

std::string to_string(RankListForm form) { return form == RankListForm::LogSumExp ? "logsumexp" : "exact"; }

RankListForm ranklist_form_from_string(std::string_view name) {
  if (name == "exact") return RankListForm::Exact;
  if (name == "logsumexp") return RankListForm::LogSumExp;
  TORCH_CHECK(false, "form must be one of: exact, logsumexp; got '", name, "'");
}

namespace functional {
namespace {

constexpr double kMaxDouble = std::numeric_limits<double>::max();

// The validated inputs of a list loss, in the accumulation dtype, 0 at invalid entries.
struct ListBatch {
  at::ScalarType in_dtype;
  at::ScalarType acc;
  at::Tensor mask;    // [B, K] bool
  at::Tensor grades;  // [B, K] higher is better, detached
  at::Tensor p;       // [B, K] policy scores, differentiable
  at::Tensor h;       // [B, K] p - q (p when reference free), differentiable
};

at::Tensor zero_like_scalar(const at::Tensor& t) { return at::zeros({}, t.options()); }

at::Tensor masked(const at::Tensor& t, const at::Tensor& mask) { return at::where(mask, t, zero_like_scalar(t)); }

// Checks and converts (policy, reference, labels, mask); anchor_name names the [B, K] anchor in messages.
ListBatch prepare(const at::Tensor& policy, std::string_view policy_name, const at::Tensor& ref,
                  std::string_view ref_name, const at::Tensor& labels, const at::Tensor& mask, ListLabels label_kind,
                  bool reference_free, bool check_finite) {
  detail::check_list_scores(policy, policy_name);
  if (!reference_free) detail::check_same_list(ref, ref_name, policy, policy_name);
  ListBatch b;
  b.in_dtype = policy.scalar_type();
  b.acc = at::toOpMathType(b.in_dtype);
  b.mask = detail::list_mask(mask, "mask", policy, policy_name);
  b.grades = detail::list_grades(labels, "labels", policy, policy_name, b.mask, label_kind == ListLabels::Ranks, b.acc);
  if (check_finite) {
    detail::check_finite_where(policy, b.mask, policy_name);
    if (!reference_free) detail::check_finite_where(ref, b.mask, ref_name);
    if (at::isFloatingType(labels.scalar_type())) detail::check_finite_where(labels, b.mask, "labels");
  }
  b.p = masked(policy.to(b.acc), b.mask);
  b.h = reference_free ? b.p : b.p - masked(ref.to(b.acc), b.mask);
  return b;
}

void check_beta(double beta) { detail::check_option_range(beta, "beta", 0.0, kMaxDouble, /*low_open=*/true); }

// Gains 2^grade - 1; under check_finite, an overflowing gain is an error naming the label.
at::Tensor gains_of(const ListBatch& b, bool check_finite) {
  const at::Tensor gains = at::exp2(b.grades) - 1;
  if (check_finite) {
    const at::Tensor bad = gains.isfinite().logical_not().logical_and(b.mask);
    if (detail::any_set(bad, "labels must be small enough for the gain 2^label - 1 to be finite")) {
      const at::Tensor where = bad.nonzero()[0];
      const int64_t i = where[0].item<int64_t>(), k = where[1].item<int64_t>();
      TORCH_CHECK(false, "labels must be small enough for the gain 2^label - 1 to be finite in ", b.acc, ", got ",
                  b.grades[i][k].item<double>(), " at [", i, ", ", k, "]");
    }
  }
  return gains;
}

// [B] index of each list's best (max grade) and worst (min grade) valid entry, first by index among ties.
std::pair<at::Tensor, at::Tensor> best_and_worst(const ListBatch& b) {
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor best = at::where(b.mask, b.grades, at::full({}, -inf, b.grades.options())).argmax(1);
  const at::Tensor worst = at::where(b.mask, b.grades, at::full({}, inf, b.grades.options())).argmin(1);
  return {best, worst};
}

// Fills losses, loss, rewards, chosen/rejected rewards and the shared metrics.
LossOutput finish(const at::Tensor& losses, const at::Tensor& rewards_acc, const ListBatch& b,
                  const Reduction& reduction) {
  LossOutput out;
  out.losses = losses.to(b.in_dtype);
  out.loss = detail::reduce(out.losses, reduction);

  c10::NoGradGuard no_grad;
  const at::Tensor rewards = masked(rewards_acc.detach(), b.mask);
  const auto [best, worst] = best_and_worst(b);
  const at::Tensor any_valid = b.mask.any(1);
  const at::Tensor chosen = masked(rewards.gather(1, best.unsqueeze(1)).squeeze(1), any_valid);
  const at::Tensor rejected = masked(rewards.gather(1, worst.unsqueeze(1)).squeeze(1), any_valid);

  const at::Tensor cr = chosen.to(at::kFloat);
  const at::Tensor rr = rejected.to(at::kFloat);
  out.metrics["rewards/chosen"] = cr.mean();
  out.metrics["rewards/rejected"] = rr.mean();
  out.metrics["rewards/margins"] = (cr - rr).mean();
  out.metrics["rewards/accuracies"] = detail::list_ranking_accuracy(rewards, b.grades, b.mask).nanmean().to(at::kFloat);
  out.metrics["rewards/kendall_tau"] = detail::list_kendall_tau(rewards, b.grades, b.mask).nanmean().to(at::kFloat);
  out.metrics["rewards/ndcg"] = detail::list_ndcg(rewards, b.grades, b.mask, 0).nanmean().to(at::kFloat);

  out.rewards = rewards.to(b.in_dtype);
  out.chosen_rewards = chosen.to(b.in_dtype);
  out.rejected_rewards = rejected.to(b.in_dtype);
  return out;
}

detail::PairSpec preferred_pairs(const ListBatch& b) {
  detail::PairSpec spec;
  spec.mask = b.mask;
  spec.grades = b.grades;
  spec.set = detail::PairSet::Preferred;
  return spec;
}

// The LiPO-lambda sums over scores s (shared by LiPO-lambda and TPO): weights from the current ranking of s.
detail::PairSums lambda_rank_sums(const at::Tensor& s, const ListBatch& b, bool lambda_weighting, bool check_finite) {
  detail::PairSpec spec = preferred_pairs(b);
  if (lambda_weighting) {
    c10::NoGradGuard no_grad;
    const at::Tensor tau = detail::descending_positions(s.detach(), b.mask).to(b.acc) + 1;  // 1-based
    spec.weight = detail::PairWeight::Lambda;
    spec.gains = gains_of(b, check_finite);
    spec.inv_discounts = tau.log1p().reciprocal();
  }
  return detail::pairwise_logistic_sums(s, spec);
}

}  // namespace

LossOutput plackett_luce_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                              const torch::Tensor& labels, const torch::Tensor& mask,
                              const PlackettLuceLossOptions& options) {
  check_beta(options.beta());
  TORCH_CHECK(options.top_m() >= 0, "top_m must be >= 0 (0 = every position), got ", options.top_m());
  const ListBatch b = prepare(policy_logps, "policy_logps", ref_logps, "ref_logps", labels, mask, options.labels(),
                              options.reference_free(), options.check_finite());
  const at::Tensor s = options.beta() * b.h;
  // Term of anchor i: LSE({s_i} u {s_j : y_j < y_i}) - s_i = log(1 + sum_{y_j < y_i} exp(s_j - s_i)).
  const detail::AnchorLogSumExp anchors = detail::anchor_logsumexp(s, preferred_pairs(b), /*include_self=*/true);
  at::Tensor terms = anchors.value;
  if (options.top_m() > 0) {
    const at::Tensor better = b.mask.unsqueeze(1).logical_and(b.grades.unsqueeze(1) > b.grades.unsqueeze(2)).sum(2);
    terms = masked(terms, better < options.top_m());
  }
  return finish(terms.sum(1), s, b, options.reduction());
}

LossOutput all_pairs_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                          const torch::Tensor& labels, const torch::Tensor& mask, const AllPairsLossOptions& options) {
  check_beta(options.beta());
  const ListBatch b = prepare(policy_logps, "policy_logps", ref_logps, "ref_logps", labels, mask, options.labels(),
                              options.reference_free(), options.check_finite());
  const at::Tensor s = options.beta() * b.h;
  const detail::PairSums sums = detail::pairwise_logistic_sums(s, preferred_pairs(b));
  LossOutput out = finish(sums.value / sums.weight.clamp_min(1), s, b, options.reduction());
  out.metrics["pairs/count"] = sums.count.to(at::kFloat).mean();
  return out;
}

LossOutput lipo_lambda_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                            const torch::Tensor& labels, const torch::Tensor& mask,
                            const LiPOLambdaLossOptions& options) {
  check_beta(options.beta());
  const ListBatch b = prepare(policy_logps, "policy_logps", ref_logps, "ref_logps", labels, mask, options.labels(),
                              options.reference_free(), options.check_finite());
  const at::Tensor s = options.beta() * b.h;
  const detail::PairSums sums = lambda_rank_sums(s, b, options.lambda_weighting(), options.check_finite());
  LossOutput out = finish(sums.value, s, b, options.reduction());
  out.metrics["lipo/lambda_weight"] = (sums.weight.sum() / sums.count.sum().clamp_min(1)).to(at::kFloat);
  return out;
}

LossOutput irpo_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                     const torch::Tensor& mask, const torch::Tensor& lengths, const IRPOLossOptions& options) {
  check_beta(options.beta());
  const ListBatch b = prepare(policy_logps, "policy_logps", ref_logps, "ref_logps", labels, mask, options.labels(),
                              options.reference_free(), options.check_finite());
  at::Tensor h = b.h;
  if (options.length_normalize()) {
    TORCH_CHECK(lengths.defined(), "lengths must be a tensor of shape ", policy_logps.sizes(),
                " matching policy_logps when length_normalize is set, got an undefined tensor");
    TORCH_CHECK(lengths.sizes() == policy_logps.sizes(), "lengths must have shape ", policy_logps.sizes(),
                " matching policy_logps, got ", lengths.sizes());
    TORCH_CHECK(lengths.device() == policy_logps.device(), "lengths must be on the device of policy_logps (",
                policy_logps.device(), "), got ", lengths.device());
    h = h / lengths.detach().to(b.acc).clamp_min(1);
  }
  const at::Tensor s = options.beta() * h;
  detail::PairSpec spec;
  spec.mask = b.mask;
  spec.set = detail::PairSet::AllDistinct;
  // log sum_{j != k} exp(s_j - s_k), then minus log(n - 1): the log of the mean.
  const detail::AnchorLogSumExp anchors = detail::anchor_logsumexp(s, spec, /*include_self=*/false);
  const at::Tensor n = detail::valid_counts(b.mask, b.acc);  // [B]
  const at::Tensor log_others = (n - 1).clamp_min(1).log().unsqueeze(1);
  const at::Tensor a = anchors.value - log_others;

  at::Tensor weights;
  {
    c10::NoGradGuard no_grad;
    // 1-based position in the ideal order; tied responses share the best one (competition ranking), so the
    // weights never depend on the order among ties.
    const at::Tensor better = b.mask.unsqueeze(1).logical_and(b.grades.unsqueeze(1) > b.grades.unsqueeze(2)).sum(2);
    const at::Tensor pos = better.to(b.acc) + 1;
    switch (options.weighting()) {
      case IRPOWeighting::DCG:
        weights = gains_of(b, options.check_finite()) / (pos + 1).log2();
        break;
      case IRPOWeighting::Discount:
        weights = (pos + 1).log2().reciprocal();
        break;
      case IRPOWeighting::LinearDiscount:
        weights = gains_of(b, options.check_finite()) / pos;
        break;
      case IRPOWeighting::Uniform:
        weights = at::ones_like(pos);
        break;
    }
  }
  const at::Tensor terms = masked(weights * at::log_sigmoid(-a), anchors.has_pairs);
  const at::Tensor losses = -terms.sum(1) / n.clamp_min(1);
  LossOutput out = finish(losses, s, b, options.reduction());
  out.metrics["irpo/weight"] = (masked(weights, b.mask).sum() / n.sum().clamp_min(1)).to(at::kFloat);
  return out;
}

LossOutput pro_loss(const torch::Tensor& policy_logps, const torch::Tensor& lengths, const torch::Tensor& labels,
                    const torch::Tensor& mask, const PROLossOptions& options) {
  detail::check_option_range(options.sft_weight(), "sft_weight", 0.0, kMaxDouble, /*low_open=*/false);
  const ListBatch b = prepare(policy_logps, "policy_logps", at::Tensor(), "", labels, mask, options.labels(),
                              /*reference_free=*/true, options.check_finite());
  at::Tensor s = b.p;
  if (options.length_normalize()) {
    TORCH_CHECK(lengths.defined(), "lengths must be a tensor of shape ", policy_logps.sizes(),
                " matching policy_logps (or pass length_normalize=false), got an undefined tensor");
    TORCH_CHECK(lengths.sizes() == policy_logps.sizes(), "lengths must have shape ", policy_logps.sizes(),
                " matching policy_logps, got ", lengths.sizes());
    TORCH_CHECK(lengths.device() == policy_logps.device(), "lengths must be on the device of policy_logps (",
                policy_logps.device(), "), got ", lengths.device());
    s = s / lengths.detach().to(b.acc).clamp_min(1);
  }
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor r = b.grades;
  at::Tensor worse, d, d_star;
  {
    c10::NoGradGuard no_grad;
    worse = detail::pair_weights(preferred_pairs(b), b.acc).gt(0);  // [b, k, i]: r_k > r_i, both valid
    d = r.unsqueeze(2) - r.unsqueeze(1);                              // D_ki = r_k - r_i
    d_star = at::where(worse, d, at::full({}, -inf, d.options())).amax(2);
    d_star = at::where(worse.any(2), d_star, at::zeros({}, d.options()));
  }
  const at::Tensor has_worse = worse.any(2);
  // log-sum-exp over {s_k D*_k} u {s_i D_ki : r_i < r_k}; pairs that do not take part are -inf.
  const at::Tensor self = s * d_star;  // [B, K]
  const at::Tensor others = at::where(worse, s.unsqueeze(1) * d, at::full({}, -inf, s.options()));
  std::vector<at::Tensor> terms = {self.unsqueeze(2), others};
  // The released code's log(1e-10 + sum of exponentials): one more element ln(1e-10) in the log-sum-exp.
  if (options.official_epsilon()) terms.push_back(at::full({self.size(0), self.size(1), 1}, std::log(1e-10), s.options()));
  const at::Tensor lse = at::logsumexp(at::cat(terms, 2), {2});
  const at::Tensor rank_terms = masked(lse - self, has_worse);
  const at::Tensor rank_loss = rank_terms.sum(1);

  const auto best_worst = best_and_worst(b);
  const at::Tensor n = detail::valid_counts(b.mask, b.acc);
  const at::Tensor sft_loss = -b.p.gather(1, best_worst.first.unsqueeze(1)).squeeze(1);
  const at::Tensor sft_scale = options.sft_weight() * (n - 1).clamp_min(0).square();
  LossOutput out = finish(rank_loss + sft_scale * sft_loss, s, b, options.reduction());
  out.metrics["pro/rank_loss"] = rank_loss.detach().to(at::kFloat).mean();
  out.metrics["pro/sft_loss"] = masked(sft_loss.detach(), n > 1).to(at::kFloat).mean();
  return out;
}

torch::Tensor tpo_step_weights(const torch::Tensor& step_embeddings, const torch::Tensor& step_mask,
                               const torch::Tensor& labels, const torch::Tensor& mask, ListLabels label_kind) {
  TORCH_CHECK(step_embeddings.defined() && step_embeddings.dim() == 4,
              "step_embeddings must have shape [B, K, S, E], got ",
              step_embeddings.defined() ? step_embeddings.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(step_embeddings.scalar_type()), "step_embeddings must be floating, got ",
              step_embeddings.scalar_type());
  c10::NoGradGuard no_grad;
  const int64_t batch = step_embeddings.size(0), k = step_embeddings.size(1), steps = step_embeddings.size(2),
                dim = step_embeddings.size(3);
  TORCH_CHECK(batch >= 1 && k >= 1, "step_embeddings must hold at least one list of at least one response, got shape ",
              step_embeddings.sizes());
  const auto acc = step_embeddings.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor anchor = step_embeddings.select(3, 0).select(2, 0).detach();  // [B, K]
  const char* anchor_name = "the first two dims of step_embeddings";
  const at::Tensor list_valid = detail::list_mask(mask, "mask", anchor, anchor_name);
  const at::Tensor grades =
      detail::list_grades(labels, "labels", anchor, anchor_name, list_valid, label_kind == ListLabels::Ranks, acc);
  at::Tensor steps_valid = at::ones({batch, k, steps}, list_valid.options());
  if (step_mask.defined()) {
    TORCH_CHECK(step_mask.sizes() == at::IntArrayRef({batch, k, steps}), "step_mask must have shape [", batch, ", ", k,
                ", ", steps, "] matching step_embeddings, got ", step_mask.sizes());
    steps_valid = step_mask.scalar_type() == at::kBool ? step_mask : step_mask.ne(0);
  }
  steps_valid = steps_valid.logical_and(list_valid.unsqueeze(2));
  const double inf = std::numeric_limits<double>::infinity();
  const at::Tensor best = at::where(list_valid, grades, at::full({}, -inf, grades.options())).argmax(1);  // [B]
  const at::Tensor e = step_embeddings.detach().to(acc);
  const at::Tensor e0 = e.gather(1, best.view({batch, 1, 1, 1}).expand({batch, 1, steps, dim}));
  const at::Tensor m0 = steps_valid.gather(1, best.view({batch, 1, 1}).expand({batch, 1, steps}));
  const at::Tensor cosine = at::cosine_similarity(e, e0, /*dim=*/3, /*eps=*/1e-8);
  const at::Tensor w = at::where(m0.logical_and(steps_valid), 1 + cosine, at::ones({}, cosine.options()));
  return at::where(steps_valid, w, at::zeros({}, w.options()));
}

LossOutput tpo_loss(const torch::Tensor& policy_step_logps, const torch::Tensor& ref_step_logps,
                    const torch::Tensor& step_mask, const torch::Tensor& step_weights, const torch::Tensor& labels,
                    const torch::Tensor& mask, const TPOLossOptions& options) {
  check_beta(options.beta());
  TORCH_CHECK(policy_step_logps.defined() && policy_step_logps.dim() == 3,
              "policy_step_logps must have shape [B, K, S], got ",
              policy_step_logps.defined() ? policy_step_logps.sizes() : at::IntArrayRef{});
  TORCH_CHECK(policy_step_logps.size(0) >= 1 && policy_step_logps.size(1) >= 1 && policy_step_logps.size(2) >= 1,
              "policy_step_logps must hold at least one list of at least one response of at least one step, got shape ",
              policy_step_logps.sizes());
  TORCH_CHECK(at::isFloatingType(policy_step_logps.scalar_type()),
              "policy_step_logps must be floating (float32, bfloat16, float16 or float64), got ",
              policy_step_logps.scalar_type());
  detail::check_same_list(ref_step_logps, "ref_step_logps", policy_step_logps, "policy_step_logps");
  const at::Tensor anchor = policy_step_logps.select(2, 0);
  const char* anchor_name = "the first two dims of policy_step_logps";
  ListBatch b;
  b.in_dtype = policy_step_logps.scalar_type();
  b.acc = at::toOpMathType(b.in_dtype);
  b.mask = detail::list_mask(mask, "mask", anchor, anchor_name);
  at::Tensor steps_valid = b.mask.unsqueeze(2).expand(policy_step_logps.sizes());
  if (step_mask.defined()) {
    TORCH_CHECK(step_mask.sizes() == policy_step_logps.sizes(), "step_mask must have shape ", policy_step_logps.sizes(),
                " matching policy_step_logps, got ", step_mask.sizes());
    TORCH_CHECK(step_mask.device() == policy_step_logps.device(), "step_mask must be on the device of policy_step_logps (",
                policy_step_logps.device(), "), got ", step_mask.device());
    steps_valid = steps_valid.logical_and(step_mask.scalar_type() == at::kBool ? step_mask : step_mask.ne(0));
  }
  at::Tensor w = at::ones({}, policy_step_logps.options().dtype(b.acc));
  if (step_weights.defined()) {
    TORCH_CHECK(step_weights.sizes() == policy_step_logps.sizes(), "step_weights must have shape ",
                policy_step_logps.sizes(), " matching policy_step_logps, got ", step_weights.sizes());
    TORCH_CHECK(at::isFloatingType(step_weights.scalar_type()), "step_weights must be floating, got ",
                step_weights.scalar_type());
    TORCH_CHECK(step_weights.device() == policy_step_logps.device(),
                "step_weights must be on the device of policy_step_logps (", policy_step_logps.device(), "), got ",
                step_weights.device());
    w = step_weights.detach().to(b.acc);
  }
  if (options.check_finite()) {
    detail::check_finite_where(policy_step_logps, steps_valid, "policy_step_logps");
    detail::check_finite_where(ref_step_logps, steps_valid, "ref_step_logps");
    if (step_weights.defined()) detail::check_finite_where(step_weights, steps_valid, "step_weights");
  }
  b.grades = detail::list_grades(labels, "labels", anchor, anchor_name, b.mask, options.labels() == ListLabels::Ranks,
                                 b.acc);
  if (options.check_finite() && at::isFloatingType(labels.scalar_type())) {
    detail::check_finite_where(labels, b.mask, "labels");
  }
  const at::Tensor h = masked(policy_step_logps.to(b.acc) - ref_step_logps.to(b.acc), steps_valid);
  const at::Tensor step_w = masked(w.expand(policy_step_logps.sizes()), steps_valid);
  const at::Tensor total_w = step_w.sum(2);
  const at::Tensor reward = masked((step_w * h).sum(2) / at::where(total_w > 0, total_w, at::ones({}, total_w.options())),
                                   total_w > 0);
  b.h = reward;
  const at::Tensor s = options.beta() * reward;
  const detail::PairSums sums = lambda_rank_sums(s, b, options.lambda_weighting(), options.check_finite());
  LossOutput out = finish(sums.value, s, b, options.reduction());
  out.metrics["tpo/step_weight"] = (step_w.sum() / steps_valid.sum().clamp_min(1)).detach().to(at::kFloat);
  return out;
}

LossOutput ranklist_loss(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps, const torch::Tensor& labels,
                         const torch::Tensor& mask, const RankListLossOptions& options) {
  check_beta(options.beta());
  detail::check_option_range(options.min_margin(), "min_margin", 0.0, kMaxDouble, /*low_open=*/false);
  TORCH_CHECK(options.window() >= 0, "window must be >= 0 (0 = every pair), got ", options.window());
  const ListBatch b = prepare(policy_logps, "policy_logps", ref_logps, "ref_logps", labels, mask, options.labels(),
                              options.reference_free(), options.check_finite());
  const at::Tensor s = options.beta() * b.h;
  detail::PairSpec spec = preferred_pairs(b);
  spec.min_margin = options.min_margin();
  spec.max_level_distance = options.window();
  at::Tensor losses;
  at::Tensor count;
  if (options.form() == RankListForm::Exact) {
    const detail::PairSums sums = detail::pairwise_logistic_sums(s, spec);
    losses = sums.value;
    count = sums.count;
  } else {
    const detail::AnchorLogSumExp anchors = detail::anchor_logsumexp(s, spec, /*include_self=*/true);
    losses = anchors.value.sum(1);
    count = anchors.pair_counts;
  }
  LossOutput out = finish(losses, s, b, options.reduction());
  out.metrics["pairs/count"] = count.to(at::kFloat).mean();
  return out;
}

}  // namespace functional

// ---------------------------------------------------------------------------------------------------------
// Modules: hold the options, delegate to the functional form.
// ---------------------------------------------------------------------------------------------------------

PlackettLuceLossImpl::PlackettLuceLossImpl(PlackettLuceLossOptions options_) : options(std::move(options_)) {}
void PlackettLuceLossImpl::reset() {}
void PlackettLuceLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::PlackettLuceLoss(beta=" << options.beta() << ", top_m=" << options.top_m()
         << ", labels=" << to_string(options.labels()) << ")";
}
LossOutput PlackettLuceLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                         const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::plackett_luce_loss(policy_logps, ref_logps, labels, mask, options);
}

AllPairsLossImpl::AllPairsLossImpl(AllPairsLossOptions options_) : options(std::move(options_)) {}
void AllPairsLossImpl::reset() {}
void AllPairsLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::AllPairsLoss(beta=" << options.beta() << ", labels=" << to_string(options.labels()) << ")";
}
LossOutput AllPairsLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                     const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::all_pairs_loss(policy_logps, ref_logps, labels, mask, options);
}

LiPOLambdaLossImpl::LiPOLambdaLossImpl(LiPOLambdaLossOptions options_) : options(std::move(options_)) {}
void LiPOLambdaLossImpl::reset() {}
void LiPOLambdaLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::LiPOLambdaLoss(beta=" << options.beta() << ", lambda_weighting=" << options.lambda_weighting()
         << ", labels=" << to_string(options.labels()) << ")";
}
LossOutput LiPOLambdaLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                       const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::lipo_lambda_loss(policy_logps, ref_logps, labels, mask, options);
}

IRPOLossImpl::IRPOLossImpl(IRPOLossOptions options_) : options(std::move(options_)) {}
void IRPOLossImpl::reset() {}
void IRPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::IRPOLoss(beta=" << options.beta() << ", weighting=" << to_string(options.weighting())
         << ", length_normalize=" << options.length_normalize() << ")";
}
LossOutput IRPOLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                 const torch::Tensor& labels, const torch::Tensor& mask, const torch::Tensor& lengths) {
  return functional::irpo_loss(policy_logps, ref_logps, labels, mask, lengths, options);
}

PROLossImpl::PROLossImpl(PROLossOptions options_) : options(std::move(options_)) {}
void PROLossImpl::reset() {}
void PROLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::PROLoss(sft_weight=" << options.sft_weight() << ", length_normalize=" << options.length_normalize()
         << ")";
}
LossOutput PROLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& lengths,
                                const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::pro_loss(policy_logps, lengths, labels, mask, options);
}

TPOLossImpl::TPOLossImpl(TPOLossOptions options_) : options(std::move(options_)) {}
void TPOLossImpl::reset() {}
void TPOLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::TPOLoss(beta=" << options.beta() << ", lambda_weighting=" << options.lambda_weighting() << ")";
}
LossOutput TPOLossImpl::forward(const torch::Tensor& policy_step_logps, const torch::Tensor& ref_step_logps,
                                const torch::Tensor& step_mask, const torch::Tensor& step_weights,
                                const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::tpo_loss(policy_step_logps, ref_step_logps, step_mask, step_weights, labels, mask, options);
}

RankListLossImpl::RankListLossImpl(RankListLossOptions options_) : options(std::move(options_)) {}
void RankListLossImpl::reset() {}
void RankListLossImpl::pretty_print(std::ostream& stream) const {
  stream << "prefopt::RankListLoss(beta=" << options.beta() << ", form=" << to_string(options.form())
         << ", min_margin=" << options.min_margin() << ", window=" << options.window() << ")";
}
LossOutput RankListLossImpl::forward(const torch::Tensor& policy_logps, const torch::Tensor& ref_logps,
                                     const torch::Tensor& labels, const torch::Tensor& mask) {
  return functional::ranklist_loss(policy_logps, ref_logps, labels, mask, options);
}

}  // namespace prefopt
