"""Tokenizers in the shapes of the main model families, built and trained with the PyPI `tokenizers` package, and the
multilingual strings the golden tests encode. Shared by tests/python/test_hf_tokenizer.py and
benchmarks/tokenizer_bench.py. Everything is generated here from a seed: nothing is downloaded.

Families: GPT-2 (byte-level BPE), Llama-3 / Qwen2 (split regex, ignore_merges, NFC, chat special tokens), Llama-2 /
Mistral (byte_fallback BPE with Metaspace), BERT (WordPiece), a Unigram (SentencePiece-style, byte_fallback), each
with added tokens exercising special / normalized / lstrip / rstrip / single_word.
"""

from __future__ import annotations

import random
from typing import Callable, Dict, List

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

WORDS = {
    "ascii": "the quick brown fox jumps over lazy dog hello world tokenizer model training data prompt chosen "
    "rejected don't it's we're they've I'm you'll she'd HTTP JSON camelCase snake_case".split(),
    "latin": "café naïve résumé façade über straße Ångström señor São Paulo jalapeño crème brûlée élève".split(),
    "cyrillic": "привет мир съешь же ещё этих мягких французских булок Москва ЁЖ".split(),
    "greek": "καλημέρα κόσμε Ελλάδα ΑΘΗΝΑ".split(),
    "arabic": "مرحبا بالعالم اللغة العربية كتاب".split(),
    "cjk": "你好 世界 日本語 のテキスト 東京 한국어 안녕하세요 中文分词".split(),
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🤖", "👩🏿‍💻", "✨"],
    "combining": ["e\u0301", "a\u0308o\u0308", "n\u0303", "\u0915\u094d\u0937", "Z\u0351\u0352\u0357"],
    "symbols": ["!", "?", "...", "—", "«", "»", "(", ")", "{", "}", "#", "$", "%", "&", "@", "^", "~", "`", "|"],
}
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t ", "\u00a0", "\u3000", "\u2028"]


def _number(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))


def make_strings(count: int, seed: int, inline_tokens: List[str]) -> List[str]:
    """`count` strings mixing every script, numbers, emoji, combining marks, whitespace runs and (with probability)
    the given added tokens; includes the empty string and whitespace-only strings."""
    rng = random.Random(seed)
    pools = list(WORDS.values())
    out = ["", " ", "\n", "  \t\n", "0", "a", "🤖"]
    while len(out) < count:
        parts = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.12:
                parts.append(_number(rng))
            elif r < 0.18 and inline_tokens:
                parts.append(rng.choice(inline_tokens))
            else:
                parts.append(rng.choice(rng.choice(pools)))
            parts.append(rng.choice(SPACES) if rng.random() < 0.25 else " " if rng.random() < 0.8 else "")
        text = "".join(parts)
        if rng.random() < 0.2:
            text = rng.choice(SPACES) + text
        out.append(text)
    return out[:count]


def corpus(seed: int = 1, lines: int = 3000) -> List[str]:
    """The training corpus: the same mix, without added tokens."""
    return make_strings(lines, seed, [])


def _shift_bpe(tokenizer: Tokenizer, front: List[str], **bpe_options) -> models.BPE:
    """The trained BPE's vocab and merges with `front` tokens given the first ids (Llama-2's <unk>, <s>, </s>,
    <0x00>..<0xFF> live in the model vocabulary, not among added tokens)."""
    import json

    model = json.loads(tokenizer.to_str())["model"]
    vocab: Dict[str, int] = {t: i for i, t in enumerate(front)}
    for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return models.BPE(vocab=vocab, merges=merges, **bpe_options)


def gpt2() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.add_tokens([AddedToken(" tokenizer", normalized=True), AddedToken("<mask>", single_word=True, lstrip=True)])
    return tok


def llama3() -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    tok.add_tokens([AddedToken("<think>", rstrip=True, normalized=False), AddedToken("</think>", lstrip=True)])
    return tok


def llama2() -> Tokenizer:
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=1500, show_progress=False)
    base.train_from_iterator(corpus(), trainer)
    front = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(_shift_bpe(base, front, byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken("<unk>", normalized=False), AddedToken("<s>", normalized=False),
                            AddedToken("</s>", normalized=False), AddedToken("[INST]"), AddedToken("[/INST]")])
    return tok


def bert() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=1500, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return tok


def unigram() -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<pad>", "</s>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.UnigramTrainer(vocab_size=1200, special_tokens=specials, unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return tok


FAMILIES: Dict[str, Callable[[], Tokenizer]] = {
    "gpt2": gpt2,
    "llama3": llama3,
    "llama2": llama2,
    "bert": bert,
    "unigram": unigram,
}

# Added tokens the strings carry in-line, per family.
INLINE = {
    "gpt2": ["<|endoftext|>", "<mask>", " <mask>", " tokenizer"],
    "llama3": ["<|begin_of_text|>", "<|im_start|>", "<|im_end|>\n", "<think>\n", " </think>", "<|eot_id|>"],
    "llama2": ["<s>", "</s>", "[INST]", " [/INST] ", "<unk>", "<0x41>"],
    "bert": ["[CLS]", "[SEP]", "[MASK]", "[PAD]"],
    "unigram": ["</s>", "<pad>", "<unk>"],
}
