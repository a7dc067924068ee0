// Training datasets: reading and encoding a JSONL file of one format into token-id examples. Never collates,
// shuffles or runs a model.
#include <prefopt/train/dataset.h>

#include <fstream>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <prefopt/data/jsonl.h>

namespace prefopt::train {

std::string to_string(DataFormat format) {
  switch (format) {
    case DataFormat::Pairwise: return "pairwise";
    case DataFormat::Ranked: return "ranked";
    case DataFormat::Unpaired: return "unpaired";
    case DataFormat::Completions: return "completions";
  }
  return "?";
}

DataFormat data_format_from_string(std::string_view name) {
  if (name == "pairwise") return DataFormat::Pairwise;
  if (name == "ranked") return DataFormat::Ranked;
  if (name == "unpaired") return DataFormat::Unpaired;
  if (name == "completions") return DataFormat::Completions;
  TORCH_CHECK(false, "unknown data format \"", std::string(name),
              "\"; valid formats: \"pairwise\", \"ranked\", \"unpaired\", \"completions\"");
}

int64_t Dataset::size() const {
  switch (format) {
    case DataFormat::Pairwise: return static_cast<int64_t>(pairs.size());
    case DataFormat::Ranked: return static_cast<int64_t>(lists.size());
    case DataFormat::Unpaired: return static_cast<int64_t>(unpaired.size());
    case DataFormat::Completions: return static_cast<int64_t>(completions.size());
  }
  return 0;
}

Dataset Dataset::from_pairs(std::vector<data::PairExample> examples) {
  Dataset d;
  d.format = DataFormat::Pairwise;
  d.pairs = std::move(examples);
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

// A "completions" line's field as a Segment, in the forms read_unpaired accepts (string, messages, *_ids).
data::Segment read_segment(const nlohmann::json& line, const std::string& field, const std::string& where) {
  const bool has_text = line.contains(field);
  const bool has_ids = line.contains(field + "_ids");
  TORCH_CHECK(!(has_text && has_ids), where, ": field \"", field, "\": give either \"", field, "\" or \"", field,
              "_ids\", not both");
  TORCH_CHECK(has_text || has_ids, where, ": field \"", field, "\": missing");
  if (has_ids) {
    const auto& ids = line.at(field + "_ids");
    TORCH_CHECK(ids.is_array(), where, ": field \"", field, "_ids\": expected a list of token ids, got ",
                ids.type_name());
    std::vector<int64_t> out;
    for (size_t i = 0; i < ids.size(); ++i) {
      TORCH_CHECK(ids[i].is_number_integer() && ids[i].get<int64_t>() >= 0, where, ": field \"", field, "_ids[", i,
                  "]\": expected a non-negative integer");
      out.push_back(ids[i].get<int64_t>());
    }
    return data::Segment::from_ids(std::move(out));
  }
  const auto& value = line.at(field);
  if (value.is_string()) return data::Segment::from_text(value.get<std::string>());
  TORCH_CHECK(value.is_array(), where, ": field \"", field, "\": expected a string or a list of messages, got ",
              value.type_name());
  std::vector<data::Message> messages;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto& m = value[i];
    TORCH_CHECK(m.is_object() && m.contains("role") && m.contains("content") && m["role"].is_string() &&
                    m["content"].is_string(),
                where, ": field \"", field, "[", i, "]\": expected {\"role\": string, \"content\": string}");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return data::Segment::from_messages(std::move(messages));
}

std::vector<CompletionExample> read_completions(const std::string& path, const data::Tokenizer& tokenizer,
                                                const data::EncodeOptions& encode) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, path, ": cannot open the file");
  std::vector<CompletionExample> out;
  std::string text;
  int64_t line_no = 0;
  while (std::getline(in, text)) {
    ++line_no;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json line;
    try {
      line = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      TORCH_CHECK(false, where, ": invalid JSON: ", e.what());
    }
    TORCH_CHECK(line.is_object(), where, ": expected a JSON object, got ", line.type_name());
    // Encode through the unpaired encoder, which applies the same truncation and chat template.
    data::UnpairedRecord record;
    record.prompt = read_segment(line, "prompt", where);
    record.completion = read_segment(line, "completion", where);
    record.label = true;
    record.source = {path, line_no};
    auto ex = data::encode(record, tokenizer, encode);
    out.push_back({std::move(ex.prompt), std::move(ex.completion)});
  }
  TORCH_CHECK(!out.empty(), path, ": no records: the file is empty");
  return out;
}

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
  switch (format) {
    case DataFormat::Pairwise:
      return from_pairs(checked(data::encode_all(data::read_pairs(path, read_options).items, tokenizer, encode), path));
    case DataFormat::Ranked:
      return from_lists(checked(data::encode_all(data::read_lists(path, read_options).items, tokenizer, encode), path));
    case DataFormat::Unpaired:
      return from_unpaired(
          checked(data::encode_all(data::read_unpaired(path, read_options).items, tokenizer, encode), path));
    case DataFormat::Completions:
      return from_completions(read_completions(path, tokenizer, encode));
  }
  TORCH_CHECK(false, "unknown data format");
}

}  // namespace prefopt::train
