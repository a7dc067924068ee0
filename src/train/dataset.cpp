// Training datasets: reading and encoding a JSONL file of one format into token-id examples. Never collates,
// shuffles or runs a model.
#include <prefopt/train/dataset.h>

#include <cstring>

#include <c10/util/Exception.h>

#include <prefopt/data/jsonl.h>

namespace prefopt::train {

std::string to_string(DataFormat format) {
  switch (format) {
    case DataFormat::Pairwise: return "pairwise";
    case DataFormat::Ranked: return "ranked";
    case DataFormat::Unpaired: return "unpaired";
    case DataFormat::Completions: return "completions";
    case DataFormat::Joint: return "joint";
  }
  return "?";
}

DataFormat data_format_from_string(std::string_view name) {
  if (name == "pairwise") return DataFormat::Pairwise;
  if (name == "ranked") return DataFormat::Ranked;
  if (name == "unpaired") return DataFormat::Unpaired;
  if (name == "completions") return DataFormat::Completions;
  if (name == "joint") return DataFormat::Joint;
  TORCH_CHECK(false, "unknown data format \"", std::string(name),
              "\"; valid formats: \"pairwise\", \"ranked\", \"unpaired\", \"completions\", \"joint\"");
}

int64_t Dataset::size() const {
  switch (format) {
    case DataFormat::Pairwise: return static_cast<int64_t>(pairs.size());
    case DataFormat::Ranked: return static_cast<int64_t>(lists.size());
    case DataFormat::Unpaired: return static_cast<int64_t>(unpaired.size());
    case DataFormat::Completions: return static_cast<int64_t>(completions.size());
    case DataFormat::Joint: return static_cast<int64_t>(joint.size());
  }
  return 0;
}

int64_t Dataset::fingerprint() const {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint64_t>(v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  auto add_ids = [&](const std::vector<int64_t>& ids) {
    add(static_cast<int64_t>(ids.size()));
    for (auto id : ids) add(id);
  };
  add(static_cast<int64_t>(format));
  for (const auto& p : pairs) add_ids(p.prompt), add_ids(p.chosen), add_ids(p.rejected);
  for (const auto& l : lists) {
    add_ids(l.prompt);
    for (const auto& r : l.responses) add_ids(r);
  }
  for (const auto& u : unpaired) add_ids(u.prompt), add_ids(u.completion);
  for (const auto& c : completions) add_ids(c.prompt), add_ids(c.completion);
  for (const auto& j : joint) add_ids(j.chosen_prompt), add_ids(j.chosen), add_ids(j.rejected_prompt), add_ids(j.rejected);
  // Numbers and variants only some runs have enter only when present, so the fingerprints of data without them
  // stay what they were.
  auto add_real = [&](double x) {
    int64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    add(bits);
  };
  for (const auto& p : pairs) {
    if (p.margin) add_real(*p.margin);
    if (p.magnitude) add_real(*p.magnitude);
  }
  for (const auto& variants : degree_variants) {
    for (const auto& v : variants) add_ids(v);
  }
  for (const auto& list : step_ids) {
    for (const auto& ids : list) add_ids(ids);
  }
  return static_cast<int64_t>(h & 0x7fffffffffffffffull);
}

Dataset Dataset::from_pairs(std::vector<data::PairExample> examples) {
  Dataset d;
  d.format = DataFormat::Pairwise;
  d.pairs = std::move(examples);
  return d;
}
Dataset Dataset::from_joint(std::vector<data::JointPairExample> examples) {
  Dataset d;
  d.format = DataFormat::Joint;
  d.joint = std::move(examples);
  return d;
}
Dataset Dataset::from_lists(std::vector<data::ListExample> examples) {
  Dataset d;
  d.format = DataFormat::Ranked;
  d.lists = std::move(examples);
  return d;
}
Dataset Dataset::from_unpaired(std::vector<data::UnpairedExample> examples) {
  Dataset d;
  d.format = DataFormat::Unpaired;
  d.unpaired = std::move(examples);
  return d;
}
Dataset Dataset::from_completions(std::vector<CompletionExample> examples) {
  for (size_t i = 0; i < examples.size(); ++i) {
    TORCH_CHECK(!examples[i].prompt.empty() && !examples[i].completion.empty(), "completion example ", i,
                ": prompt and completion must be non-empty token lists");
  }
  Dataset d;
  d.format = DataFormat::Completions;
  d.completions = std::move(examples);
  return d;
}

namespace {

template <typename T>
std::vector<T> checked(data::DataResult<T> result, const std::string& path) {
  TORCH_CHECK(!result.items.empty(), path, ": no examples left after encoding");
  return std::move(result.items);
}

}  // namespace

Dataset Dataset::read(const std::string& path, DataFormat format, const data::Tokenizer& tokenizer,
                      const data::EncodeOptions& encode) {
  data::ReadOptions read_options;
  read_options.on_error(encode.on_error()).max_skip_messages(encode.max_skip_messages());
  Dataset out;
  switch (format) {
    case DataFormat::Pairwise:
      out = from_pairs(checked(data::encode_all(data::read_pairs(path, read_options).items, tokenizer, encode), path));
      break;
    case DataFormat::Ranked:
      out = from_lists(checked(data::encode_all(data::read_lists(path, read_options).items, tokenizer, encode), path));
      break;
    case DataFormat::Unpaired:
      out = from_unpaired(
          checked(data::encode_all(data::read_unpaired(path, read_options).items, tokenizer, encode), path));
      break;
    case DataFormat::Completions:
      out = from_completions(
          checked(data::encode_all(data::read_completions(path, read_options).items, tokenizer, encode), path));
      break;
    case DataFormat::Joint:
      out = from_joint(
          checked(data::encode_all(data::read_joint_pairs(path, read_options).items, tokenizer, encode), path));
      break;
  }
  out.max_length = encode.max_length();
  return out;
}

void add_degree_variants(Dataset& data, const data::Tokenizer& tokenizer, int64_t num_degrees,
                         const data::KeyphraseOptions& keyphrases) {
  TORCH_CHECK(data.format == DataFormat::Pairwise, "add_degree_variants: SPO augments pairs, got ",
              to_string(data.format), " data");
  TORCH_CHECK(num_degrees >= 2, "add_degree_variants: num_degrees must be >= 2, got ", num_degrees);
  const auto eos = tokenizer.eos_id();
  const auto options = data::GradedRemovalOptions().num_degrees(num_degrees).keyphrases(keyphrases);
  data.degree_variants.clear();
  data.degree_variants.reserve(data.pairs.size());
  for (size_t i = 0; i < data.pairs.size(); ++i) {
    const auto& chosen = data.pairs[i].chosen;
    const bool ends_with_eos = eos && !chosen.empty() && chosen.back() == *eos;
    std::vector<std::vector<int64_t>> variants;
    for (const auto& v : data::graded_removal(tokenizer.decode(chosen, /*skip_special_tokens=*/true), options)) {
      std::vector<int64_t> ids = tokenizer.encode(v.text);
      if (ends_with_eos) ids.push_back(*eos);
      TORCH_CHECK(!ids.empty(), "add_degree_variants: pair ", i, ": the degree ", variants.size(),
                  " variant of the chosen response encodes to no token");
      variants.push_back(std::move(ids));
    }
    data.degree_variants.push_back(std::move(variants));
  }
}

void add_step_ids(Dataset& data, const data::Tokenizer& tokenizer, const std::string& delimiter) {
  TORCH_CHECK(data.format == DataFormat::Ranked, "add_step_ids: TPO's steps are cut from ranked lists, got ",
              to_string(data.format), " data");
  TORCH_CHECK(!delimiter.empty(), "add_step_ids: the step delimiter must not be empty");
  const auto eos = tokenizer.eos_id();
  data.step_ids.clear();
  for (size_t b = 0; b < data.lists.size(); ++b) {
    std::vector<std::vector<int64_t>> list_steps;
    for (size_t k = 0; k < data.lists[b].responses.size(); ++k) {
      auto& response = data.lists[b].responses[k];
      const bool ends_with_eos = eos && !response.empty() && response.back() == *eos;
      const std::string text = tokenizer.decode(response, /*skip_special_tokens=*/true);
      std::vector<int64_t> ids, steps;
      int64_t step = 0;
      for (size_t begin = 0; begin < text.size();) {
        const size_t at = text.find(delimiter, begin);
        const size_t end = at == std::string::npos ? text.size() : at + delimiter.size();
        const auto piece = tokenizer.encode(std::string_view(text).substr(begin, end - begin));
        if (!piece.empty()) {
          ids.insert(ids.end(), piece.begin(), piece.end());
          steps.insert(steps.end(), piece.size(), step++);
        }
        begin = end;
      }
      TORCH_CHECK(!ids.empty(), "add_step_ids: list ", b, ", response ", k, " has no step (it decodes to no text)");
      if (ends_with_eos) {
        ids.push_back(*eos);
        steps.push_back(step - 1);
      }
      response = std::move(ids);
      list_steps.push_back(std::move(steps));
    }
    data.step_ids.push_back(std::move(list_steps));
  }
}

}  // namespace prefopt::train
