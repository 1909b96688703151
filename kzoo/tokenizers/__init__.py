"""Tokenizers: train a lossless SentencePiece vocabulary, then tokenize in-graph.

`train_sentencepiece` writes `tokenizer.model` into a run directory;
`load_tokenizer` reads it back as a `SentencePieceTokenizer` Keras layer that runs
inside tf.data and exported SavedModels. TensorFlow-only.
"""

from kzoo.tokenizers.model_file import TOKENIZER_FILENAME
from kzoo.tokenizers.sentencepiece_tokenizer import (
    SentencePieceTokenizer,
    load_tokenizer,
)
from kzoo.tokenizers.sentencepiece_trainer import train_sentencepiece

__all__ = [
    "TOKENIZER_FILENAME",
    "SentencePieceTokenizer",
    "load_tokenizer",
    "train_sentencepiece",
]
