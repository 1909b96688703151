"""Texts (or text pairs) to the inputs of a `BertClassifier`."""

import keras

from kzoo.preprocessing.bert_preprocessor import BertPreprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class BertClassifierPreprocessor(BertPreprocessor):
    """Packs single texts, or text pairs when `pairs`, for sequence classification.

    The class names stay with the model (`BertClassifier.labels`: they size its
    output layer), so they are not repeated here.

    Args:
        tokenizer: A `kzoo.tokenizers.WordPieceTokenizer`.
        sequence_length: Packed length (`data.sequence_length`).
        pairs: The classifier was trained on text pairs (a built-in
            `next_sentence` task or a `data.text_pair_column`); its `classify`
            signature then takes `text_pairs`.
    """

    CONFIG_KEYS = ("sequence_length", "pairs")

    def __init__(self, tokenizer, sequence_length, pairs=False, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.pairs = bool(pairs)
