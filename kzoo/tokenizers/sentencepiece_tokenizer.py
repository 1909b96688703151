"""In-graph SentencePiece tokenization, for tf.data pipelines and exported SavedModels.

A Keras layer around TensorFlow Text's SentencePiece op (the same op that
`keras_hub.tokenizers.SentencePieceTokenizer` wraps). It is not a KerasHub
subclass: KerasHub's tokenizers return Python lists when called eagerly and expose
`vocabulary_size()` as a method, whereas here `tokenize` always returns TensorFlow
tensors and the sizes and special ids are properties.
"""

import base64
import json
import os

import keras
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from kzoo import staged_files
from kzoo.tokenizers.byte_level_words import literal_pattern, regex_split
from kzoo.tokenizers.byte_pair_tokenizer import VOCAB_JSON, load_byte_pair_tokenizer
from kzoo.tokenizers.model_file import read_model_file, write_model_file
from kzoo.tokenizers.sentencepiece_trainer import SENTINEL_PIECE
from kzoo.tokenizers.tokenizer import Tokenizer
from kzoo.tokenizers.wordpiece_tokenizer import load_wordpiece_tokenizer
from kzoo.tokenizers.wordpiece_trainer import VOCAB_FILENAME

# The settings beside `tokenizer.model` that are not the defaults.
SETTINGS_JSON = "sentencepiece.json"
# How the text gets its leading "▁": SentencePiece's `add_dummy_prefix` on every
# piece between special tokens, or Hugging Face's `Metaspace` schemes.
PREPEND_SCHEMES = ("sentencepiece", "always", "first", "never")


def _id_of(piece, processor_id, role):
    """A read-only property: the id of the special `piece`, `processor_id(processor)`
    (-1 where the vocabulary has none)."""
    return property(
        lambda tokenizer: processor_id(tokenizer._processor), doc=f"The id of `{piece}`, {role}."
    )


@keras.saving.register_keras_serializable(package="kzoo")
class SentencePieceTokenizer(Tokenizer):
    """Tokenizes strings to int32 ids and back, inside or outside a `tf.function`.

    Calling the layer is `tokenize`. The trained model (the `tokenizer.model`
    bytes) is embedded in `get_config()` as base64, so the tokenizer survives
    `keras.saving` round trips and `tf.saved_model.save` on its own.

    `sentinel_ids` lists the ids of T5's span-corruption sentinels `<extra_id_0>`,
    `<extra_id_1>`, ... in that order, looked up by piece, so nothing assumes where
    they sit (kzoo puts them right after `"\\n"`, T5's released vocabulary last
    and in descending order); it is empty for a vocabulary trained without
    `num_sentinels`. A sentinel is always one token: the text `"<extra_id_0>"`
    tokenizes to `sentinel_ids[0]` and detokenizes back.

    Hugging Face's T5 tokenizer cuts the text at each sentinel and encodes the
    pieces apart (`"a<extra_id_0>b"` gives `▁a`, the sentinel, `▁b`; the space
    before a sentinel is dropped). `split_at_sentinels` does the same; by
    default it is on exactly when the sentinels are the last ids, `<extra_id_0>`
    last (T5's layout, see `kzoo.tokenizers.sentencepiece_sentinels`), so an
    imported T5 tokenizer gives Hugging Face's ids and a kzoo-trained one keeps
    its lossless round trip.

    Llama-2 and Mistral (a SentencePiece BPE, `tokenizer.model`): Hugging Face
    cuts its special tokens (`<unk>`, `<s>`, `</s>`, and user-defined pieces)
    out of the text; pass them as `special_tokens` to do the same. Where the
    model adds a dummy prefix, `prepend_scheme` says which pieces of the text
    get it: `"sentencepiece"` every piece between special tokens (SentencePiece
    itself, and Hugging Face's `legacy=True` `Prepend` normalizer), `"always"`
    every piece that does not start with a space, `"first"` only the text's
    start, where it does not start with a space (Hugging Face's `Metaspace`
    pre-tokenizer, `legacy=False`), `"never"` none.

    Args:
        proto: The serialized SentencePiece model, `bytes` (the content of a
            `tokenizer.model` file; see `load_tokenizer`).
        split_at_sentinels: Encode the text between sentinels apart, as Hugging
            Face does; None (the default) decides from where the sentinels are.
        special_tokens: Pieces cut out of the text (each is its id), the text
            between them encoded apart; default none.
        prepend_scheme: One of `PREPEND_SCHEMES`, see above.
        **kwargs: Base `keras.layers.Layer` arguments (e.g. `name`).

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be\\n"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> ids = tokenizer.tokenize(["to be", "not"])
    >>> ids.to_list()
    [[7, 6, 5, 8, 9], [10, 6, 7]]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'to be', b'not']
    >>> tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id
    (0, 1, 2, 3)
    >>> tokenizer.sentinel_ids
    []
    >>> _ = train_sentencepiece(texts=["to be or not to be\\n"], model_type="char",
    ...                         num_sentinels=2, output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> tokenizer.sentinel_ids
    [5, 6]
    >>> ids = tokenizer.tokenize("to<extra_id_1> be")
    >>> ids.numpy().tolist()
    [9, 8, 6, 7, 10, 11]
    >>> tokenizer.detokenize(ids).numpy()
    b'to<extra_id_1> be'
    """

    def __init__(
        self,
        proto,
        split_at_sentinels=None,
        special_tokens=None,
        prepend_scheme="sentencepiece",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(proto, bytes):
            raise TypeError(
                f"proto: expected the bytes of a tokenizer.model file, got "
                f"{type(proto).__name__}; use kzoo.tokenizers.load_tokenizer(run_dir)"
            )
        if prepend_scheme not in PREPEND_SCHEMES:
            raise ValueError(
                f"prepend_scheme: expected one of {PREPEND_SCHEMES}, got {prepend_scheme!r}"
            )
        self.proto = proto
        self._processor = spm.SentencePieceProcessor(model_proto=proto)
        self._sentencepiece = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
        self._sentinel_ids = _find_sentinel_ids(self._processor)
        if split_at_sentinels is None:
            count = len(self._sentinel_ids)
            last = list(range(self.vocabulary_size - 1, self.vocabulary_size - 1 - count, -1))
            split_at_sentinels = count > 0 and list(self._sentinel_ids) == last
        self.split_at_sentinels = bool(split_at_sentinels) and bool(self._sentinel_ids)
        self.prepend_scheme = prepend_scheme
        self.special_tokens = list(special_tokens or [])
        pieces = list(self.special_tokens)
        if self.split_at_sentinels:
            pieces += [SENTINEL_PIECE.format(index) for index in range(len(self._sentinel_ids))]
        ids = [self._processor.piece_to_id(piece) for piece in pieces]
        unknown = [p for p, i in zip(pieces, ids) if self._processor.id_to_piece(i) != p]
        if unknown:
            raise ValueError(f"special_tokens: {unknown} are not pieces of the model")
        self._split_pieces = pieces
        if pieces:
            self._split_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(pieces), tf.constant(ids, tf.int32)
                ),
                default_value=-1,
            )
        self._unprefixed = None
        if prepend_scheme != "sentencepiece":
            from sentencepiece import sentencepiece_model_pb2

            model = sentencepiece_model_pb2.ModelProto()
            model.ParseFromString(proto)
            if model.normalizer_spec.add_dummy_prefix:
                model.normalizer_spec.add_dummy_prefix = False
                # Its own name: a restored SavedModel shares the op's model
                # between ops of the same name.
                self._unprefixed = tf_text.SentencepieceTokenizer(
                    model=model.SerializeToString(), out_type=tf.int32, name="unprefixed"
                )

    @property
    def vocabulary_size(self):
        """The number of ids: `0 <= id < vocabulary_size`."""
        return self._processor.vocab_size()

    pad_id = _id_of(
        "<pad>",
        lambda sp: sp.pad_id() if sp.pad_id() >= 0 else sp.eos_id(),
        "which fills padded positions (`eos_id` where the model has none, as Llama's)",
    )
    unk_id = _id_of("<unk>", lambda sp: sp.unk_id(), "for characters it cannot represent")
    bos_id = _id_of("<s>", lambda sp: sp.bos_id(), "beginning of sequence")
    eos_id = _id_of("</s>", lambda sp: sp.eos_id(), "which ends every document")

    @property
    def sentinel_ids(self):
        """The ids of `<extra_id_0>`, `<extra_id_1>`, ... in that order; [] if none."""
        return list(self._sentinel_ids)

    def get_vocabulary(self):
        """Returns the pieces, a list of `str` indexed by id."""
        return [self._processor.id_to_piece(i) for i in range(self.vocabulary_size)]

    def tokenize(self, inputs):
        """Splits strings into ids; no bos/eos is added.

        Args:
            inputs: A string, a list of strings, or a string tensor of any rank.

        Returns:
            For a scalar string, a 1-D int32 `tf.Tensor`; for a batch of `n`
            strings, an int32 `tf.RaggedTensor` of shape `(n, None)`.
        """
        texts = tf.convert_to_tensor(inputs, tf.string)
        if not self._split_pieces and self._unprefixed is None:
            return self._sentencepiece.tokenize(texts)
        if texts.shape.rank == 0:
            return self.tokenize(texts[tf.newaxis])[0]
        if texts.shape.rank != 1:
            raise ValueError(
                f"inputs: expected a string or a 1-D batch of strings, got shape {texts.shape}"
            )
        if self._split_pieces:
            pattern = literal_pattern(self._split_pieces)
            pieces, starts, _ = regex_split(texts, pattern, pattern)
            special = self._split_table.lookup(pieces.flat_values)
        else:
            pieces = tf.RaggedTensor.from_tensor(texts[:, tf.newaxis])
            starts = tf.zeros_like(pieces, tf.int64)
            special = tf.fill(tf.shape(texts), -1)
        is_special = special >= 0
        text = tf.where(is_special, "", pieces.flat_values)
        ids = self._encode(text, starts.flat_values)
        kept = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(special, is_special), tf.cast(is_special, tf.int64)
        )
        return pieces.with_flat_values(tf.concat([ids, kept], axis=1)).merge_dims(1, 2)

    def _encode(self, texts, starts):
        """The ids of the pieces `texts` between special tokens, which start at
        the byte offsets `starts` of their text; ragged `(n, None)` int32."""

        def encode(tokenizer, texts):
            ids = tokenizer.tokenize(texts).with_row_splits_dtype(tf.int64)
            return tf.cast(ids, tf.int32)

        if self._unprefixed is None:
            return encode(self._sentencepiece, texts)
        prefixed = tf.logical_not(tf.strings.regex_full_match(texts, "(?s)[ ▁].*"))
        if self.prepend_scheme == "first":
            prefixed &= tf.equal(starts, 0)
        elif self.prepend_scheme == "never":
            prefixed &= False
        return tf.concat(
            [
                encode(self._sentencepiece, tf.where(prefixed, texts, "")),
                encode(self._unprefixed, tf.where(prefixed, "", texts)),
            ],
            axis=1,
        )

    def _detokenize(self, ids):
        """Drops `<pad>`, `<s>` and `</s>` and joins the pieces.

        Padding anywhere (e.g. a dense, right-padded batch) is removed, and so is
        every `</s>`: documents packed into one sequence come back joined without
        a separator. `<unk>` becomes `" ⁇ "`; ids outside the vocabulary are
        dropped.
        """
        keep = self._known(ids, self.pad_id, self.bos_id, self.eos_id)
        if isinstance(ids, tf.Tensor) and ids.shape.rank == 1:
            ids = tf.boolean_mask(ids, keep)
        else:
            ids = tf.ragged.boolean_mask(ids, keep)
        return self._sentencepiece.detokenize(ids)

    def save(self, directory):
        """Atomically writes `directory/tokenizer.model`, and `sentencepiece.json`
        where `special_tokens` or `prepend_scheme` are set; returns the path of
        `tokenizer.model`."""
        path = write_model_file(directory, self.proto)
        settings = {"special_tokens": self.special_tokens, "prepend_scheme": self.prepend_scheme}
        settings_path = os.path.join(directory, SETTINGS_JSON)
        if settings != {"special_tokens": [], "prepend_scheme": "sentencepiece"}:
            staged_files.write_json_atomic(settings_path, settings)
        elif os.path.isfile(settings_path):
            os.remove(settings_path)
        return path

    def get_config(self):
        config = super().get_config()
        config["proto"] = base64.b64encode(self.proto).decode("ascii")
        config["split_at_sentinels"] = self.split_at_sentinels
        config["special_tokens"] = list(self.special_tokens)
        config["prepend_scheme"] = self.prepend_scheme
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["proto"] = base64.b64decode(config["proto"])
        return cls(**config)


def _find_sentinel_ids(processor):
    """Looks up `<extra_id_0>`, `<extra_id_1>`, ... until one is missing."""
    ids = []
    while True:
        piece = SENTINEL_PIECE.format(len(ids))
        piece_id = processor.piece_to_id(piece)
        # piece_to_id gives the <unk> id for a piece the vocabulary lacks.
        if processor.id_to_piece(piece_id) != piece:
            return tuple(ids)
        ids.append(piece_id)


def load_tokenizer(directory):
    """Loads the tokenizer that `train_wordpiece` or `train_sentencepiece` wrote,
    or that a tokenizer's `save` wrote (e.g. an imported checkpoint's).

    Args:
        directory: A run directory.

    Returns:
        A `BytePairTokenizer` when `directory/vocab.json` exists, a
        `WordPieceTokenizer` when `directory/vocab.txt` does, else a
        `SentencePieceTokenizer` read from `directory/tokenizer.model`.

    Raises:
        FileNotFoundError: Neither file exists (the message names
            `directory/tokenizer.model`).

    Example:
    >>> load_tokenizer("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/tokenizer.model does not exist; ...
    """
    if os.path.isfile(os.path.join(directory, VOCAB_JSON)):
        return load_byte_pair_tokenizer(directory)
    if os.path.isfile(os.path.join(directory, VOCAB_FILENAME)):
        return load_wordpiece_tokenizer(directory)
    settings = {}
    if os.path.isfile(os.path.join(directory, SETTINGS_JSON)):
        with open(os.path.join(directory, SETTINGS_JSON), encoding="utf-8") as file:
            settings = json.load(file)
    return SentencePieceTokenizer(read_model_file(directory), **settings)
