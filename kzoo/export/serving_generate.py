"""`kzoo generate saved_models/NAME/VERSION --prompt ...`: generation from an export.

Calls the SavedModel's `generate` signature, the one TF Serving serves, so what it
prints is what a client of the server gets. Beam search is not exported.
"""

STRATEGIES = ("greedy", "sample")


def generate_from_saved_model(path, prompts, max_new_tokens=64, strategy="greedy",
                              temperature=1.0, top_k=0, top_p=1.0, seed=0):
    """Continues `prompts` with an exported model.

    Args:
        path: A version directory written by `kzoo export`.
        prompts: A list of prompt strings.
        max_new_tokens: Tokens to generate; the signature clips it into
            `[1, export.max_new_tokens]`.
        strategy: `"greedy"` or `"sample"`.
        temperature, top_k, top_p, seed: Sampling controls (ignored for greedy).

    Returns:
        The continuations (without the prompts), a list of `str`.

    Example:
    >>> generate_from_saved_model("saved_models/gpt_tiny/1", ["ta"], strategy="beam")
    Traceback (most recent call last):
    ...
    ValueError: strategy: an exported model generates with one of ('greedy', 'sample'); got 'beam' (beam search runs from a run directory)
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy: an exported model generates with one of {STRATEGIES}; got "
            f"{strategy!r} (beam search runs from a run directory)"
        )
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature: must be > 0 for sampling; got {temperature}")
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    generate = tf.saved_model.load(path).signatures["generate"]
    outputs = generate(
        prompts=tf.constant(list(prompts), tf.string),
        max_new_tokens=tf.constant([max_new_tokens], tf.int32),
        temperature=tf.constant([temperature if strategy == "sample" else 0.0], tf.float32),
        top_k=tf.constant([top_k], tf.int32),
        top_p=tf.constant([top_p], tf.float32),
        seed=tf.constant([seed], tf.int32),
    )
    return [text.decode("utf-8", errors="replace") for text in outputs["generated"].numpy()]
