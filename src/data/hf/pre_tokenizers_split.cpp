// The split machinery of the pre-tokenizers, as Hugging Face's NormalizedString::split does it (find_matches, then a
// SplitDelimiterBehavior), and the Split pre-tokenizer built on it. Never copies a piece that a split leaves whole,
// and never keeps state between calls other than thread-local scratch buffers.
#include <algorithm>
#include <utility>

#include "pre_tokenizers_internal.h"

namespace prefopt::data::hf::pretok {

using nlohmann::json;

void regex_spans(const OnigRegex& regex, std::string_view text, bool invert, std::vector<Span>& spans) {
  thread_local std::vector<std::pair<std::size_t, std::size_t>> matches;
  spans.clear();
  if (text.empty()) {
    spans.push_back({0, 0, invert});
    return;
  }
  regex.find_all(text, matches);
  uint32_t last = 0;
  for (const auto& [b, e] : matches) {
    if (last != b) spans.push_back({last, static_cast<uint32_t>(b), invert});
    spans.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e), !invert});
    last = static_cast<uint32_t>(e);
  }
  if (last != text.size()) spans.push_back({last, static_cast<uint32_t>(text.size()), invert});
}

void apply_behavior(std::vector<Span>& spans, Behavior behavior) {
  // Each case is the fold of normalizer.rs, done in place: `w` spans written so far, never ahead of the reading.
  std::size_t w = 0;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Isolated:
      return;
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.match) spans[w++] = s;
      break;
    case Behavior::Contiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && w > 0) {
          spans[w - 1].end = s.end;
        } else {
          spans[w++] = s;
        }
        previous_match = s.match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous_match && w > 0) {
          spans[w - 1].end = s.end;
        } else {
          spans[w++] = s;
        }
        previous_match = s.match;
      }
      break;
    case Behavior::MergedWithNext: {
      // Folded from the right: the kept spans fill the vector from its end, then move to its front.
      std::size_t front = spans.size();
      for (std::size_t r = spans.size(); r-- > 0;) {
        const Span s = spans[r];
        if (s.match && !previous_match && front < spans.size()) {
          spans[front].begin = s.begin;
        } else {
          spans[--front] = s;
        }
        previous_match = s.match;
      }
      std::move(spans.begin() + static_cast<std::ptrdiff_t>(front), spans.end(), spans.begin());
      w = spans.size() - front;
      break;
    }
  }
  spans.resize(w);
}

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

void emit(Piece& piece, const std::vector<Span>& kept, std::vector<Piece>& out) {
  std::size_t non_empty = 0;
  const Span* only = nullptr;
  for (const Span& s : kept) {
    if (s.end > s.begin) {
      ++non_empty;
      only = &s;
    }
  }
  if (non_empty == 1 && only->begin == 0 && only->end == piece.text.size()) {
    out.push_back(std::move(piece));
    return;
  }
  for (const Span& s : kept)
    if (s.end > s.begin) out.push_back(sub_piece(piece, s.begin, s.end));
}

Piece sub_piece(const Piece& piece, std::size_t a, std::size_t b) {
  Piece out;
  out.text.assign(piece.text, a, b - a);
  if (!piece.origin.empty()) {
    out.origin.reserve(b - a + 1);
    out.origin.assign(piece.origin.begin() + static_cast<std::ptrdiff_t>(a),
                      piece.origin.begin() + static_cast<std::ptrdiff_t>(b));
    out.origin.push_back(end_origin(piece, a, b));
  }
  return out;
}

Behavior parse_behavior(const json& j, const JsonContext& ctx) {
  static const std::pair<const char*, Behavior> kNames[] = {{"Removed", Behavior::Removed},
                                                            {"Isolated", Behavior::Isolated},
                                                            {"MergedWithPrevious", Behavior::MergedWithPrevious},
                                                            {"MergedWithNext", Behavior::MergedWithNext},
                                                            {"Contiguous", Behavior::Contiguous}};
  if (!j.is_string()) ctx.fail("expected a string naming a split behavior, got " + std::string(j.type_name()));
  const std::string& name = j.get_ref<const std::string&>();
  for (const auto& [n, b] : kNames)
    if (name == n) return b;
  ctx.fail("unknown split behavior \"" + name +
           "\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

namespace {

class Split final : public Step {
 public:
  Split(OnigRegex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void run(std::vector<Piece>& pieces, const Segment&) const override {
    split_each(pieces, [&](std::string_view text, std::vector<Span>& spans) {
      regex_spans(regex_, text, invert_, spans);
      apply_behavior(spans, behavior_);
    });
  }

 private:
  OnigRegex regex_;
  Behavior behavior_;
  bool invert_;
};

}  // namespace

std::unique_ptr<Step> make_split(const json& j, const JsonContext& ctx) {
  const auto field = [&](const char* key) -> const json& {
    auto it = j.find(key);
    if (it == j.end()) ctx.fail(std::string("missing field \"") + key + "\"");
    return *it;
  };
  const json& pattern = field("pattern");
  const JsonContext pctx = ctx.at("pattern");
  if (!pattern.is_object() || pattern.size() != 1)
    pctx.fail("expected an object with one key, \"String\" or \"Regex\", got " + pattern.dump());
  const std::string kind = pattern.begin().key();
  const json& value = pattern.begin().value();
  if (kind != "String" && kind != "Regex")
    pctx.fail("unknown pattern kind \"" + kind + "\" (expected \"String\" or \"Regex\")");
  const JsonContext vctx = pctx.at(kind);
  if (!value.is_string()) vctx.fail("expected a string, got " + std::string(value.type_name()));
  const std::string& text = value.get_ref<const std::string&>();
  const Behavior behavior = parse_behavior(field("behavior"), ctx.at("behavior"));
  const json& invert = field("invert");
  if (!invert.is_boolean()) ctx.at("invert").fail("expected a boolean, got " + std::string(invert.type_name()));
  OnigRegex regex = kind == "String" ? OnigRegex(Regex::literal(text, vctx)) : compile_onig(text, vctx);
  return std::make_unique<Split>(std::move(regex), behavior, invert.get<bool>());
}

}  // namespace prefopt::data::hf::pretok
