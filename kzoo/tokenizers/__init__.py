"""Tokenizers: train a vocabulary, then tokenize in-graph.

`train_sentencepiece` writes a lossless `tokenizer.model` into a run directory and
`train_wordpiece` a BERT WordPiece `vocab.txt`; `load_tokenizer` reads either back
as a Keras layer (`SentencePieceTokenizer` or `WordPieceTokenizer`) that runs
inside tf.data and exported SavedModels. TensorFlow-only.
"""

from kzoo.tokenizers.model_file import TOKENIZER_FILENAME
from kzoo.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer, load_tokenizer
from kzoo.tokenizers.sentencepiece_trainer import train_sentencepiece
from kzoo.tokenizers.tokenizer import Tokenizer
from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer, load_wordpiece_tokenizer
from kzoo.tokenizers.wordpiece_trainer import SPECIAL_TOKENS, VOCAB_FILENAME, train_wordpiece

__all__ = [
    "SPECIAL_TOKENS",
    "TOKENIZER_FILENAME",
    "VOCAB_FILENAME",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
    "load_wordpiece_tokenizer",
    "train_sentencepiece",
    "train_wordpiece",
]
