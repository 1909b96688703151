"""Tokenizers: train a vocabulary, then tokenize in-graph.

`train_sentencepiece` writes a lossless `tokenizer.model` into a run directory and
`train_wordpiece` a BERT WordPiece `vocab.txt`; `load_tokenizer` reads either back
as a Keras layer (`SentencePieceTokenizer` or `WordPieceTokenizer`) that runs
inside tf.data and exported SavedModels. TensorFlow-only.

Pretrained tokenizers: `load_hf_tokenizer` reads a Hugging Face checkpoint's
(GPT-2's, Llama-3's and Qwen2's byte-level BPE as a `BytePairTokenizer`, BERT's
WordPiece, T5's SentencePiece with its sentinels, Llama-2's and Mistral's
SentencePiece BPE) with ids identical to the `tokenizers` library;
`save_hf_tokenizer` writes them back; `load_keras_hub_tokenizer` reads a KerasHub
preset's.
"""

from kzoo.tokenizers.byte_pair_tokenizer import BytePairTokenizer, load_byte_pair_tokenizer
from kzoo.tokenizers.hf_tokenizer_files import (
    load_hf_tokenizer,
    load_keras_hub_tokenizer,
    save_hf_tokenizer,
)
from kzoo.tokenizers.model_file import TOKENIZER_FILENAME
from kzoo.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer, load_tokenizer
from kzoo.tokenizers.sentencepiece_trainer import train_sentencepiece
from kzoo.tokenizers.tokenizer import Tokenizer
from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer, load_wordpiece_tokenizer
from kzoo.tokenizers.wordpiece_trainer import SPECIAL_TOKENS, VOCAB_FILENAME, train_wordpiece

__all__ = [
    "SPECIAL_TOKENS",
    "BytePairTokenizer",
    "TOKENIZER_FILENAME",
    "VOCAB_FILENAME",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_byte_pair_tokenizer",
    "load_hf_tokenizer",
    "load_keras_hub_tokenizer",
    "load_tokenizer",
    "load_wordpiece_tokenizer",
    "save_hf_tokenizer",
    "train_sentencepiece",
    "train_wordpiece",
]
