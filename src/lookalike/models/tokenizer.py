"""CLIP's tokenizer for a text tower: text -> rows of token ids, start and end tokens around
them, padded with 0 to the context length, as CLIP's text encoders take them.

Two file formats are read, both through Hugging Face's `tokenizers` (a byte-level BPE):
``tokenizer.json`` (what a Hugging Face CLIP export or an OpenCLIP hub folder ships), and CLIP's
own ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI's and OpenCLIP's merges file), from which the same
vocabulary is rebuilt: the 256 byte symbols, the same with ``</w>``, one token per merge (the
first 48,894, as CLIP uses), then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 in all).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import LookalikeError

START, END = "<|startoftext|>", "<|endoftext|>"
#: CLIP's vocabulary is 49,408 tokens: 512 byte symbols, these merges, the two special tokens.
CLIP_MERGES = 49152 - 256 - 2
#: CLIP splits text into words, numbers (one digit each) and runs of other symbols before BPE;
#: "'s", "'t", ... stay tokens of their own.
_CLIP_WORDS = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|"
               r"[^\s\p{L}\p{N}]+")


class TokenizerError(LookalikeError):
    """A tokenizer file that cannot be read or is not a CLIP tokenizer."""


def byte_symbols() -> list[str]:
    """CLIP's (and GPT-2's) printable stand-in for each byte, in CLIP's vocabulary order:
    the printable Latin-1 bytes stand for themselves, the others for 256 + their rank."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in set(printable)]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


class ClipTokenizer:
    """Turns texts into CLIP's token rows: ``encode(["a red cell"], 77)`` -> int64 (1, 77)."""

    def __init__(self, tokenizer, path: Path):
        self._tokenizer = tokenizer
        self.path = path
        start, end = tokenizer.token_to_id(START), tokenizer.token_to_id(END)
        if start is None or end is None:
            raise TokenizerError(f"{path}: not a CLIP tokenizer (it has no {START} and {END} "
                                 "tokens); give the tokenizer.json or bpe_simple_vocab_16e6."
                                 "txt.gz exported with the model")
        self.start, self.end = int(start), int(end)
        self.vocab_size = int(tokenizer.get_vocab_size())

    def encode(self, texts: list[str], context_length: int) -> np.ndarray:
        """One row per text: start token, the text's tokens (cut to fit), end token, zeros.
        A text longer than the context keeps its first tokens and still ends in the end token,
        as CLIP's own tokenizer does."""
        rows = np.zeros((len(texts), context_length), np.int64)
        for row, encoding in zip(rows, self._tokenizer.encode_batch(
                list(texts), add_special_tokens=False)):
            ids = [self.start, *encoding.ids[:context_length - 2], self.end]
            row[:len(ids)] = ids
        return rows


def load_tokenizer(path: str | os.PathLike) -> ClipTokenizer:
    """The tokenizer in ``path``: a tokenizer.json, or CLIP's gzipped merges file."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise TokenizerError(f"tokenizer: no file at {source}; give the model's tokenizer.json "
                             "(or CLIP's bpe_simple_vocab_16e6.txt.gz)")
    if source.name.endswith(".gz"):
        return ClipTokenizer(_from_merges_file(source), source)
    from tokenizers import Tokenizer

    try:
        return ClipTokenizer(Tokenizer.from_file(os.fspath(source)), source)
    except TokenizerError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise TokenizerError(f"tokenizer: {source} is not a readable tokenizer.json ({first}); "
                             "give the tokenizer.json exported with the model") from None


def _read_merges(source: Path) -> list[tuple[str, str]]:
    try:
        lines = gzip.decompress(source.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"tokenizer: {source} is not a gzipped merges file ({exc})") from None
    pairs = [tuple(line.split()) for line in lines[1:] if line.strip()]  # line 1: a version
    if not pairs or any(len(p) != 2 for p in pairs):
        raise TokenizerError(f"tokenizer: {source} is not CLIP's merges file (lines of two "
                             "symbols after a version line)")
    return [(a, b) for a, b in pairs[:CLIP_MERGES]]


def _from_merges_file(source: Path):
    """CLIP's tokenizer rebuilt from its merges: its vocabulary in CLIP's order, and CLIP's
    text clean-up (whitespace runs to one space, lower case) and word split."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    merges = _read_merges(source)
    symbols = byte_symbols()
    words = [*symbols, *(s + "</w>" for s in symbols), *(a + b for a, b in merges), START, END]
    vocab = {word: i for i, word in enumerate(words)}
    tokenizer = Tokenizer(BPE(vocab, merges, end_of_word_suffix="</w>", unk_token=END))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(),
        normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_WORDS), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.add_special_tokens([START, END])
    return tokenizer
