// Tests of the option declarations (prefopt/losses/options.h): reading option maps into Options structs with clear
// errors, the op-schema form of each declared option, the shortest exact text of defaults, and that every enum
// option's declared choices are exactly the names its parser accepts.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <prefopt/losses/degree.h>
#include <prefopt/losses/joint.h>
#include <prefopt/losses/listwise.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/reference_free.h>
#include <prefopt/losses/reward.h>
#include <prefopt/losses/token_level.h>
#include <prefopt/losses/unpaired.h>

#include "support/expect_error.h"

using prefopt::testing::expect_error;

namespace {

// Each declared Choice option's names parse with the enum's own parser and print back the same.
template <typename Enum>
void expect_choices_round_trip(Enum (*parse)(std::string_view), size_t expected_count) {
  const auto names = prefopt::OptionType<Enum>::choices();
  EXPECT_EQ(names.size(), expected_count);
  for (const auto& name : names) EXPECT_EQ(prefopt::to_string(parse(name)), name);
}

}  // namespace

TEST(LossOptions, ReadsDeclaredOptionsAndKeepsTheRest) {
  prefopt::DPOLossOptions options;
  options.rpo_alpha(0.5);
  prefopt::read_options(options, {{"beta", 0.3}, {"loss_type", "ipo"}, {"reference_free", true}}, "test: ");
  EXPECT_EQ(options.beta(), 0.3);
  EXPECT_EQ(options.loss_type(), prefopt::kIPO);
  EXPECT_TRUE(options.reference_free());
  EXPECT_EQ(options.rpo_alpha(), 0.5);  // not named: unchanged
  prefopt::PlackettLuceLossOptions pl;
  prefopt::read_options(pl, {{"top_m", 2}, {"beta", 1}}, "");  // an integer where a real is expected
  EXPECT_EQ(pl.top_m(), 2);
  EXPECT_EQ(pl.beta(), 1.0);
}

TEST(LossOptions, ErrorsNameTheOptionAndWhatWasExpected) {
  prefopt::DPOLossOptions options;
  expect_error([&] { prefopt::read_options(options, {{"bta", 0.1}}, "loss \"dpo\": "); },
               "loss \"dpo\": unknown option \"bta\"; valid options: \"alpha_divergence_coef\", \"bco_running_mean\"");
  expect_error([&] { prefopt::read_options(options, {{"beta", "high"}}, "loss \"dpo\": "); },
               "loss \"dpo\": option \"beta\" must be a number, got string");
  expect_error([&] { prefopt::read_options(options, {{"reference_free", 1}}, "ctx: "); },
               "ctx: option \"reference_free\" must be a bool, got integer");
  expect_error([&] { prefopt::read_options(options, {{"loss_type", 3}}, ""); }, "loss_type must be a string, got integer");
  expect_error([&] { prefopt::read_options(options, {{"loss_type", "sigmod"}}, ""); },
               "loss_type must be one of: sigmoid, hinge, ipo, exo_pair");
  prefopt::RankListLossOptions ranklist;
  expect_error([&] { prefopt::read_options(ranklist, {{"window", 1.5}}, ""); }, "window must be an integer, got number");
  // Keys a caller reads itself are allowed through.
  prefopt::read_options(options, {{"use_weighting", true}}, "", {"use_weighting"});
}

TEST(LossOptions, SchemaArgumentsComeFromTheDeclaration) {
  EXPECT_EQ(prefopt::schema_arguments<prefopt::SimPOLossOptions>(),
            "float beta=2.0, float gamma=0.5, float label_smoothing=0.0");
  EXPECT_EQ(prefopt::schema_arguments<prefopt::TDPOLossOptions>(),
            "str variant=\"tdpo2\", float beta=0.1, float alpha=0.5");
  EXPECT_EQ(prefopt::schema_arguments<prefopt::RankListLossOptions>(),
            "float beta=0.1, str form=\"exact\", float min_margin=0.0, int window=0, bool reference_free=False");
  EXPECT_EQ(prefopt::schema_arguments<prefopt::DPOLossOptions>({"bco_running_mean", "f_divergence"}),
            "str loss_type=\"sigmoid\", float beta=0.1, float label_smoothing=0.0, float alpha_divergence_coef=0.5, "
            "float discopop_tau=0.05, float rpo_alpha=0.0, bool reference_free=False");
  expect_error([] { prefopt::schema_arguments<prefopt::SimPOLossOptions>({"gama"}); },
               "\"gama\" is not a declared option");
}

TEST(LossOptions, DefaultsAreTheStructsDefaultsInShortestExactForm) {
  for (const auto& spec : prefopt::option_specs<prefopt::DPOLossOptions>()) {
    if (spec.name == "discopop_tau") EXPECT_EQ(spec.default_value.to_json(), "0.05");
    if (spec.name == "loss_type") EXPECT_EQ(spec.default_value.to_json(), "\"sigmoid\"");
    if (spec.name == "reference_free") EXPECT_EQ(spec.default_value.to_json(), "false");
  }
  EXPECT_EQ(prefopt::OptionValue(1e-10).to_json(), "1e-10");
  EXPECT_EQ(prefopt::OptionValue(0.1 + 0.2).to_json(), "0.30000000000000004");  // exact, not rounded to 0.3
  EXPECT_EQ(prefopt::OptionValue(2.0).to_json(), "2.0");
  EXPECT_EQ(prefopt::OptionValue(int64_t{3}).to_json(), "3");
}

TEST(LossOptions, EveryEnumOptionsChoicesAreWhatItsParserAccepts) {
  expect_choices_round_trip(&prefopt::dpo_loss_type_from_string, 15);
  expect_choices_round_trip(&prefopt::f_divergence_from_string, 4);
  expect_choices_round_trip(&prefopt::cpo_loss_type_from_string, 4);
  expect_choices_round_trip(&prefopt::kto_loss_type_from_string, 2);
  expect_choices_round_trip(&prefopt::tdpo_variant_from_string, 2);
  expect_choices_round_trip(&prefopt::irpo_weighting_from_string, 4);
  expect_choices_round_trip(&prefopt::ranklist_form_from_string, 2);
  expect_choices_round_trip(&prefopt::reward_loss_type_from_string, 3);
}

TEST(LossOptions, EveryDeclaredOptionWritesTheStructField) {
  // Setting each declared option to a non-default value through the table changes exactly that field.
  auto check = [](auto options) {
    using Options = decltype(options);
    for (const auto& field : prefopt::OptionTable<Options>::fields()) {
      SCOPED_TRACE(field.spec.name);
      Options o;
      prefopt::OptionValue other = field.spec.default_value;
      switch (field.spec.kind) {
        case prefopt::OptionKind::Bool: other = !std::get<bool>(field.spec.default_value.value); break;
        case prefopt::OptionKind::Integer: other = std::get<int64_t>(field.spec.default_value.value) + 1; break;
        case prefopt::OptionKind::Real: other = std::get<double>(field.spec.default_value.value) + 0.25; break;
        case prefopt::OptionKind::String: other = std::get<std::string>(field.spec.default_value.value) + "x"; break;
        case prefopt::OptionKind::Choice:
          for (const auto& c : field.spec.choices) {
            if (!(prefopt::OptionValue(c) == field.spec.default_value)) other = c;
          }
          break;
      }
      ASSERT_FALSE(other == field.spec.default_value);
      field.set(o, other, "");
      EXPECT_EQ(field.get(o), other);
      for (const auto& f : prefopt::OptionTable<Options>::fields()) {
        if (f.spec.name != field.spec.name) EXPECT_EQ(f.get(o), f.spec.default_value) << f.spec.name;
      }
    }
  };
  check(prefopt::DPOLossOptions());
  check(prefopt::SimPOLossOptions());
  check(prefopt::CPOLossOptions());
  check(prefopt::ORPOLossOptions());
  check(prefopt::KTOLossOptions());
  check(prefopt::TDPOLossOptions());
  check(prefopt::PlackettLuceLossOptions());
  check(prefopt::AllPairsLossOptions());
  check(prefopt::LiPOLambdaLossOptions());
  check(prefopt::IRPOLossOptions());
  check(prefopt::PROLossOptions());
  check(prefopt::TPOLossOptions());
  check(prefopt::RankListLossOptions());
  check(prefopt::JointDPOLossOptions());
  check(prefopt::SPOLossOptions());
  check(prefopt::RewardLossOptions());
}
