// Exposes the data layer's Hugging Face tokenizer and chat templates to Python: the TorchScript class
// torch.classes.prefopt.Tokenizer (load, encode, decode, vocabulary, chat template) and the operator
// torch.ops.prefopt.render_chat_template for a template string. Conversations and variables cross as JSON text,
// so no Python object model is needed here. Never tokenizes by itself: everything is HFTokenizer / ChatTemplate.
#include <torch/custom_class.h>
#include <torch/library.h>

#include "op_support.h"
#include <prefopt/data/chat_template.h>
#include <prefopt/data/hf_tokenizer.h>

namespace prefopt {
namespace {

using ops::view;

// Chat-template variables come as one JSON object; strings among them that name special tokens are passed as
// such, and the whole object as further variables (lists, flags, documents...).
data::ChatTemplateInputs template_inputs(c10::string_view messages_json, bool add_generation_prompt,
                                         bool continue_final_message, c10::string_view tools_json,
                                         c10::string_view variables_json) {
  data::ChatTemplateInputs inputs;
  inputs.messages_json = std::string(view(messages_json));
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.continue_final_message = continue_final_message;
  inputs.tools_json = std::string(view(tools_json));
  inputs.variables_json = std::string(view(variables_json));
  return inputs;
}

struct TokenizerHolder : torch::CustomClassHolder {
  explicit TokenizerHolder(data::HFTokenizer t) : tokenizer(std::move(t)) {}
  data::HFTokenizer tokenizer;
};

c10::intrusive_ptr<TokenizerHolder> from_file(std::string path) {
  return c10::make_intrusive<TokenizerHolder>(data::HFTokenizer::from_file(path));
}
c10::intrusive_ptr<TokenizerHolder> from_pretrained(std::string folder) {
  return c10::make_intrusive<TokenizerHolder>(data::HFTokenizer::from_pretrained(folder));
}

std::string render_chat_template_op(c10::string_view source, c10::string_view messages_json,
                                    bool add_generation_prompt, bool continue_final_message,
                                    c10::string_view tools_json, c10::string_view variables_json) {
  const data::ChatTemplate compiled(view(source));
  return compiled
      .render(template_inputs(messages_json, add_generation_prompt, continue_final_message, tools_json,
                              variables_json))
      .text;
}

using Holder = c10::intrusive_ptr<TokenizerHolder>;

}  // namespace

TORCH_LIBRARY_FRAGMENT(prefopt, m) {
  m.class_<TokenizerHolder>("Tokenizer")
      .def_static("from_file", &from_file)
      .def_static("from_pretrained", &from_pretrained)
      .def("encode",
           [](const Holder& self, std::string text, bool add_special_tokens) {
             return self->tokenizer.encode(text, add_special_tokens);
           })
      .def("encode_with_offsets",
           [](const Holder& self, std::string text, bool add_special_tokens) {
             const data::Encoding e = self->tokenizer.encode_with_offsets(text, add_special_tokens);
             std::vector<int64_t> begins, ends;
             for (const auto& [b, end] : e.offsets) {
               begins.push_back(static_cast<int64_t>(b));
               ends.push_back(static_cast<int64_t>(end));
             }
             return std::make_tuple(e.ids, e.tokens, begins, ends);
           })
      .def("encode_batch",
           [](const Holder& self, std::vector<std::string> texts, bool add_special_tokens, int64_t num_threads) {
             return self->tokenizer.encode_batch(texts, add_special_tokens, num_threads);
           })
      .def("decode",
           [](const Holder& self, std::vector<int64_t> ids, bool skip_special_tokens) {
             return self->tokenizer.decode(ids, skip_special_tokens);
           })
      .def("token_to_id",
           [](const Holder& self, std::string token) -> std::optional<int64_t> {
             return self->tokenizer.token_to_id(token);
           })
      .def("id_to_token",
           [](const Holder& self, int64_t id) -> std::optional<std::string> { return self->tokenizer.id_to_token(id); })
      .def("vocab_size", [](const Holder& self) { return self->tokenizer.vocab_size(); })
      .def("bos_id", [](const Holder& self) { return self->tokenizer.bos_id(); })
      .def("eos_id", [](const Holder& self) { return self->tokenizer.eos_id(); })
      .def("pad_id", [](const Holder& self) { return self->tokenizer.pad_id(); })
      .def("special_tokens",
           [](const Holder& self) {
             std::vector<std::string> names, contents;
             for (const auto& [n, c] : self->tokenizer.special_tokens()) {
               names.push_back(n);
               contents.push_back(c);
             }
             return std::make_tuple(names, contents);
           })
      .def("chat_template_names", [](const Holder& self) { return self->tokenizer.chat_template_names(); })
      .def("apply_chat_template",
           [](const Holder& self, std::string messages_json, bool add_generation_prompt, bool continue_final_message,
              std::string tools_json, std::string variables_json, std::string template_name) {
             return self->tokenizer
                 .apply_chat_template(template_inputs(messages_json, add_generation_prompt, continue_final_message,
                                                      tools_json, variables_json),
                                      template_name)
                 .text;
           })
      .def("save_pretrained", [](const Holder& self, std::string folder) { self->tokenizer.save_pretrained(folder); });
  m.def(
      "render_chat_template(str template, str messages_json, bool add_generation_prompt=False, "
      "bool continue_final_message=False, str tools_json=\"\", str variables_json=\"\") -> str");
}

TORCH_LIBRARY_IMPL(prefopt, CompositeImplicitAutograd, m) {
  m.impl("render_chat_template", &render_chat_template_op);
}

}  // namespace prefopt
