// Exposes SPO's pieces as operators: torch.ops.prefopt.degree_loss (per-example cross-entropy),
// .spo_loss (the combined loss and the per-example degree losses), .pool_hidden_states, and the text
// augmentation .extract_keyphrases and .graded_removal (string in, strings out; no tensors). Composite over
// the C++ functions.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "prefopt/data/keyphrases.h"
#include "prefopt/losses/degree.h"

namespace prefopt {
namespace {

std::string_view view(c10::string_view s) { return {s.data(), s.size()}; }

at::Tensor degree_loss_op(const at::Tensor& logits, const at::Tensor& degrees, double label_smoothing,
                          bool check_inputs) {
  return functional::degree_loss(
             logits, degrees,
             DegreeLossOptions().label_smoothing(label_smoothing).check_inputs(check_inputs).reduction(torch::kNone))
      .losses;
}

std::tuple<at::Tensor, at::Tensor> spo_loss_op(const at::Tensor& align_loss, const at::Tensor& degree_logits,
                                               const at::Tensor& degrees, double degree_weight, double label_smoothing,
                                               bool check_inputs) {
  LossOutput align;
  align.loss = align_loss;
  const auto options =
      SPOLossOptions().degree_weight(degree_weight).label_smoothing(label_smoothing).check_inputs(check_inputs);
  const LossOutput out = functional::spo_loss(align, degree_logits, degrees, options);
  return {out.loss, degree_loss_op(degree_logits, degrees, label_smoothing, /*check_inputs=*/false)};
}

at::Tensor pool_hidden_states_op(const at::Tensor& hidden_states, const std::optional<at::Tensor>& attention_mask,
                                 c10::string_view pooling) {
  return functional::pool_hidden_states(hidden_states, attention_mask.value_or(at::Tensor()),
                                        degree_pooling_from_string(view(pooling)));
}

data::KeyphraseOptions keyphrase_options(int64_t max_words, int64_t max_phrases, int64_t min_word_chars,
                                         const std::optional<std::vector<std::string>>& stop_words) {
  return data::KeyphraseOptions()
      .max_words(max_words)
      .max_phrases(max_phrases)
      .min_word_chars(min_word_chars)
      .stop_words(stop_words.value_or(std::vector<std::string>{}));
}

std::tuple<std::vector<std::string>, std::vector<double>> extract_keyphrases_op(
    c10::string_view text, int64_t max_words, int64_t max_phrases, int64_t min_word_chars,
    const std::optional<std::vector<std::string>>& stop_words) {
  std::vector<std::string> phrases;
  std::vector<double> scores;
  for (const auto& k :
       data::extract_keyphrases(view(text), keyphrase_options(max_words, max_phrases, min_word_chars, stop_words))) {
    phrases.push_back(k.phrase);
    scores.push_back(k.score);
  }
  return {phrases, scores};
}

std::tuple<std::vector<std::string>, std::vector<int64_t>> graded_removal_op(
    c10::string_view text, int64_t num_degrees, int64_t max_words, int64_t min_word_chars,
    const std::optional<std::vector<std::string>>& stop_words) {
  const auto options = data::GradedRemovalOptions().num_degrees(num_degrees).keyphrases(
      keyphrase_options(max_words, /*max_phrases=*/0, min_word_chars, stop_words));
  std::vector<std::string> texts;
  std::vector<int64_t> removed;
  for (const auto& v : data::graded_removal(view(text), options)) {
    texts.push_back(v.text);
    removed.push_back(v.phrases_removed);
  }
  return {texts, removed};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.def(
      "degree_loss(Tensor logits, Tensor degrees, *, float label_smoothing=0.0, bool check_inputs=True) -> Tensor");
  m.def(
      "spo_loss(Tensor align_loss, Tensor degree_logits, Tensor degrees, *, float degree_weight=0.1, "
      "float label_smoothing=0.0, bool check_inputs=True) -> (Tensor loss, Tensor degree_losses)");
  m.def("pool_hidden_states(Tensor hidden_states, Tensor? attention_mask=None, *, str pooling=\"mean\") -> Tensor");
  m.def(
      "extract_keyphrases(str text, *, int max_words=4, int max_phrases=0, int min_word_chars=1, "
      "str[]? stop_words=None) -> (str[] phrases, float[] scores)");
  m.def(
      "graded_removal(str text, *, int num_degrees=4, int max_words=4, int min_word_chars=1, "
      "str[]? stop_words=None) -> (str[] texts, int[] phrases_removed)");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("degree_loss", &degree_loss_op);
  m.impl("spo_loss", &spo_loss_op);
  m.impl("pool_hidden_states", &pool_hidden_states_op);
  m.impl("extract_keyphrases", &extract_keyphrases_op);
  m.impl("graded_removal", &graded_removal_op);
}

}  // namespace prefopt
