"""Hugging Face tokenizers and chat templates from prefopt's C++ implementation (no `tokenizers` or `jinja2` needed).

`Tokenizer.from_file("tokenizer.json")` and `Tokenizer.from_pretrained(folder)` load what the Rust `tokenizers`
library loads and give the same ids; `apply_chat_template` and `render_chat_template` render as transformers'
apply_chat_template does. Conversations, tools and variables cross into C++ as JSON, so every value must be
JSON-serialisable. Nothing here tokenizes in Python.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

import torch


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _tools_json(tools: Optional[Sequence[Any]]) -> str:
    return "" if tools is None else _json(list(tools))


def render_chat_template(
    template: str,
    messages: Sequence[Dict[str, Any]],
    add_generation_prompt: bool = False,
    tools: Optional[Sequence[Dict[str, Any]]] = None,
    continue_final_message: bool = False,
    **variables: Any,
) -> str:
    """Renders the Jinja chat template `template` over `messages` as transformers' apply_chat_template(tokenize=False)
    does; `variables` are the template's other variables (bos_token, eos_token, any chat_template_kwargs).

    Example::

        prefopt.render_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}",
                                     [{"role": "user", "content": "hi"}])   # "hi"
    """
    return torch.ops.prefopt.render_chat_template(
        template,
        _json(list(messages)),
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        tools_json=_tools_json(tools),
        variables_json=_json(variables) if variables else "",
    )


class Tokenizer:
    """A Hugging Face fast tokenizer (tokenizer.json) run by prefopt's C++ code.

    Example::

        tok = prefopt.Tokenizer.from_pretrained("my-checkpoint")
        ids = tok.encode("Hello world")                 # as AutoTokenizer(...)("Hello world")["input_ids"]
        tok.decode(ids, skip_special_tokens=True)       # "Hello world"
        tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @classmethod
    def from_file(cls, path: str) -> "Tokenizer":
        """A tokenizer.json file alone (no BOS / EOS / chat template: those come from tokenizer_config.json)."""
        return cls(torch.classes.prefopt.Tokenizer.from_file(str(path)))

    @classmethod
    def from_pretrained(cls, folder: str) -> "Tokenizer":
        """A checkpoint folder: tokenizer.json, tokenizer_config.json, chat_template.jinja, special_tokens_map.json."""
        return cls(torch.classes.prefopt.Tokenizer.from_pretrained(str(folder)))

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        """The token ids of ``text``, as transformers' ``tokenizer(text)["input_ids"]`` gives them.

        ``add_special_tokens`` applies tokenizer.json's post-processor (e.g. Llama's BOS), as transformers does by
        default; with False the ids are those of the text alone.
        """
        return self._handle.encode(text, add_special_tokens)

    def encode_with_offsets(self, text: str, add_special_tokens: bool = True):
        """(ids, tokens, offsets): offsets as (begin, end) byte ranges of the UTF-8 text; (0, 0) for added specials."""
        ids, tokens, begins, ends = self._handle.encode_with_offsets(text, add_special_tokens)
        return ids, tokens, list(zip(begins, ends))

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True, num_threads: int = 0) -> List[List[int]]:
        """:meth:`encode` over many texts at once: one list of ids per text of ``texts``, in input order.

        The texts are tokenized in C++ on ``num_threads`` threads (0: one per hardware thread; never more threads
        than texts; a negative count raises RuntimeError); the ids are the same as encoding each text alone.
        ``add_special_tokens`` as in :meth:`encode`.
        """
        return self._handle.encode_batch(list(texts), add_special_tokens, num_threads)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of the token ids ``ids`` (any sequence of ints), through tokenizer.json's decoder.

        With ``skip_special_tokens`` the added tokens marked special (BOS, EOS, ``<|im_end|>``, ...) are dropped
        first, as in transformers' ``decode(ids, skip_special_tokens=True)``. An id that is no token raises
        RuntimeError naming it.
        """
        return self._handle.decode([int(i) for i in ids], skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        """The id of the token string ``token`` (an added token's content or a vocabulary entry), or None.

        ``token`` is looked up as it is, not tokenized: byte-level vocabularies spell tokens in GPT-2's printable
        form (e.g. ``"Ġhello"``). None when it is no token.
        """
        return self._handle.token_to_id(token)

    def id_to_token(self, id: int) -> Optional[str]:
        """The token string of ``id`` (an added token's content or the vocabulary entry), or None.

        Byte-level tokens come in GPT-2's printable form (e.g. ``"Ġhello"``); use :meth:`decode` for text. None for
        an id that is no token (negative, or not in the vocabulary).
        """
        return self._handle.id_to_token(int(id))

    @property
    def vocab_size(self) -> int:
        """1 + the largest id (model vocabulary and added tokens)."""
        return self._handle.vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def bos_token_id(self) -> Optional[int]:
        """The id of the ``bos_token`` that tokenizer_config.json (or special_tokens_map.json) sets, else None.

        Always None for a tokenizer loaded with :meth:`from_file`.
        """
        return self._handle.bos_id()

    @property
    def eos_token_id(self) -> Optional[int]:
        """The id of the ``eos_token`` that tokenizer_config.json (or special_tokens_map.json) sets, else None.

        Always None for a tokenizer loaded with :meth:`from_file`.
        """
        return self._handle.eos_id()

    @property
    def pad_token_id(self) -> int:
        """The id to pad with: the ``pad_token``'s id, else :attr:`eos_token_id`, else 0.

        Padding is masked out, so any valid id works; this is never None.
        """
        return self._handle.pad_id()

    @property
    def special_tokens(self) -> Dict[str, str]:
        """The named special tokens that are set, name to content (e.g. ``{"bos_token": "<s>", "eos_token": "</s>"}``).

        In the order bos, eos, unk, sep, pad, cls, mask, from tokenizer_config.json (or special_tokens_map.json):
        the variables a chat template sees. Empty for a tokenizer loaded with :meth:`from_file`.
        """
        names, contents = self._handle.special_tokens()
        return dict(zip(names, contents))

    @property
    def chat_template_names(self) -> List[str]:
        """The names of the tokenizer's chat templates, what ``apply_chat_template(chat_template=...)`` accepts.

        The main template (chat_template.jinja, or tokenizer_config.json's ``chat_template`` string) is named
        ``"default"``; a list-valued ``chat_template`` adds its named templates. Empty when there is none (always
        for a tokenizer loaded with :meth:`from_file`).
        """
        return list(self._handle.chat_template_names())

    def apply_chat_template(
        self,
        messages: Sequence[Dict[str, Any]],
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        tools: Optional[Sequence[Dict[str, Any]]] = None,
        continue_final_message: bool = False,
        chat_template: Optional[str] = None,
        **variables: Any,
    ):
        """As transformers' apply_chat_template: the rendered text, or its ids (no special tokens added) with
        tokenize=True. `chat_template` names one of the tokenizer's templates (not a template string)."""
        text = self._handle.apply_chat_template(
            _json(list(messages)),
            add_generation_prompt,
            continue_final_message,
            _tools_json(tools),
            _json(variables) if variables else "",
            chat_template or "",
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def save_pretrained(self, folder: str) -> None:
        """tokenizer.json, tokenizer_config.json and special_tokens_map.json, loadable by AutoTokenizer."""
        self._handle.save_pretrained(str(folder))
