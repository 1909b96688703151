"""T5's `<extra_id_N>` sentinels, added to a SentencePiece model as Hugging Face adds them.

A released T5 `spiece.model` (32,000 pieces for t5-small) lacks the span-corruption
sentinels: Hugging Face's `T5Tokenizer` appends `extra_ids` (100) of them after the
vocabulary, `<extra_id_0>` LAST (id 32099) and `<extra_id_99>` first (id 32000).
`append_sentinels` writes them into the model proto as USER_DEFINED pieces in that
order, so `SentencePieceTokenizer` gives them the same ids, tokenizes each as one
token wherever it occurs, and finds them (`sentinel_ids`).
"""

from sentencepiece import sentencepiece_model_pb2

from kzoo.tokenizers.sentencepiece_trainer import SENTINEL_PIECE


def append_sentinels(proto, count=100):
    """Returns `proto` with `<extra_id_{count-1}>` ... `<extra_id_0>` appended.

    Sentinels the model already holds are kept where they are (a model that
    `append_sentinels` or `train_sentencepiece(num_sentinels=...)` wrote is
    returned unchanged).

    Args:
        proto: A serialized SentencePiece model, `bytes`.
        count: How many sentinels (the `extra_ids` of `tokenizer_config.json`).

    Returns:
        The serialized model, `bytes`.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import SentencePieceTokenizer, train_sentencepiece
    >>> from kzoo.tokenizers.model_file import read_model_file
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not\\n"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = SentencePieceTokenizer(append_sentinels(read_model_file(run_dir), 3))
    >>> tokenizer.vocabulary_size, tokenizer.sentinel_ids
    (15, [14, 13, 12])
    """
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    pieces = {piece.piece for piece in model.pieces}
    added = False
    for index in reversed(range(count)):
        piece = SENTINEL_PIECE.format(index)
        if piece in pieces:
            continue
        new = model.pieces.add()
        new.piece = piece
        new.score = 0.0
        new.type = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
        added = True
    return model.SerializeToString() if added else proto


def count_sentinels(proto):
    """How many `<extra_id_N>` pieces `proto` holds (the `extra_ids` to save)."""
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    pieces = {piece.piece for piece in model.pieces}
    count = 0
    while SENTINEL_PIECE.format(count) in pieces:
        count += 1
    return count
