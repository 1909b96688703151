"""The SavedModel of a causal LM: a `keras.export.ExportArchive` with its signatures.

`ExportArchive` (not a hand-made `tf.Module` holding the Keras model) saves exactly
the variables and resources the endpoints use, so the SavedModel loads both with
`tf.saved_model.load` and with the TF1 session loader that TF Serving uses. The
tokenizer's SentencePiece resource is tracked explicitly: the LSTM does not own
its tokenizer, and the resource is not a variable. The decoding loops write their
buffers with `kzoo.layers.write_at`, so the signatures need no XLA at serving time.
"""

import keras

from kzoo.export.causal_lm_signatures import ALIASES, INPUT_SPECS, CausalLMSignatures


def write_saved_model(path, model, tokenizer, limits, xla=False):
    """Builds the archive (see `build_archive`) and writes the SavedModel to `path`.

    Args:
        path: An empty or missing directory.
        model, tokenizer, limits, xla: See `build_archive`.

    Example:
    >>> import tempfile
    >>> import tensorflow as tf
    >>> from kzoo.export.causal_lm_signatures import GenerationLimits
    >>> from kzoo.models import LSTMLanguageModel
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> lm = LSTMLanguageModel(tokenizer.vocabulary_size, 4, 8,
    ...                        end_token_id=tokenizer.eos_id)
    >>> write_saved_model(run_dir + "/saved", lm, tokenizer, GenerationLimits(4, 16, None))
    >>> out = tf.saved_model.load(run_dir + "/saved").signatures["score"](
    ...     texts=tf.constant(["to be", ""]))
    >>> out["num_tokens"].numpy().tolist()
    [5, 0]
    """
    build_archive(model, tokenizer, limits, xla=xla).write_out(path, verbose=False)


def build_archive(model, tokenizer, limits, xla=False):
    """Builds an `ExportArchive` with the `generate`, `score` and `generate_ids`
    endpoints (and `serving_default`, an alias of `generate`).

    Args:
        model: A kzoo causal LM (`GPTCausalLM`, `LSTMLanguageModel`).
        tokenizer: Its `SentencePieceTokenizer`.
        limits: A `kzoo.export.causal_lm_signatures.GenerationLimits`.
        xla: Compile the decoding and scoring cores with XLA.

    Returns:
        The archive; `write_saved_model` writes it.
    """
    signatures = CausalLMSignatures(model, tokenizer, limits, xla=xla)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    # `write_out` saves the first endpoint as `serving_default` too: generation.
    assert next(iter(INPUT_SPECS)) == ALIASES["serving_default"]
    for name, specs in INPUT_SPECS.items():
        archive.add_endpoint(name, getattr(signatures, name), list(specs.values()))
    return archive


def signature_names():
    """Every signature of the exported SavedModel, aliases included."""
    return [*INPUT_SPECS, *ALIASES]
