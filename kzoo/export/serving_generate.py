"""`kzoo generate saved_models/NAME/VERSION --prompt ...`: generation from an export.

Calls the SavedModel's generation signature, the one TF Serving serves, so what it
prints is what a client of the server gets: a causal LM's `generate` (prompts in,
continuations out), a seq2seq model's `translate` or a T5 model's `generate`
(sources in, targets out). Beam search is exported for encoder-decoders only, with
the number of beams fixed at export. A BERT export generates no text: the error
names the signatures it serves.
"""

import json
import os

from kzoo.export import layout

DEFAULT_NEW_TOKENS = 64
# (signature, its text input) of each family's generation endpoint.
ENDPOINTS = (("generate", "prompts"), ("translate", "sources"), ("generate", "sources"))
STRATEGIES = {"prompts": ("greedy", "sample"), "sources": ("greedy", "sample", "beam")}


def default_new_tokens(limit):
    """`max_new_tokens` when none is asked for: 64, or `limit` if lower (None: no
    limit)."""
    return DEFAULT_NEW_TOKENS if limit is None else min(DEFAULT_NEW_TOKENS, limit)


class ExportedGenerator:
    """The generation endpoint of an export, loaded once.

    Args:
        path: A version directory written by `kzoo export`.

    Attributes:
        signature: The endpoint's name (`generate` or `translate`).
        continues_prompt: True for a causal LM (its output continues the prompt),
            False for an encoder-decoder (its output answers the source).
        limits: The export's limits (`assets.extra/kzoo_export.json`), `{}` when
            the export has no such file.

    Raises:
        ValueError: The export has no generation endpoint (a BERT export); the
            message names the signatures it has.
    """

    def __init__(self, path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        self.path = path
        self._loaded = tf.saved_model.load(path)
        signatures = self._loaded.signatures
        self.signature, self._text_input = _generation_endpoint(path, signatures)
        self._function = signatures[self.signature]
        self.continues_prompt = self._text_input == "prompts"
        self.limits = _export_limits(path)

    @property
    def max_new_tokens(self):
        """The export's cap of `max_new_tokens` (None: not recorded)."""
        return self.limits.get("max_new_tokens")

    def generate(
        self,
        prompts,
        max_new_tokens=None,
        strategy="greedy",
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_beams=None,
    ):
        """Generates from `prompts`; see `generate_from_saved_model`."""
        import tensorflow as tf

        strategies = STRATEGIES[self._text_input]
        if strategy not in strategies:
            raise ValueError(
                f"strategy: an exported model generates with one of {strategies}; got "
                f"{strategy!r} (a causal LM's beam search runs from a run directory)"
            )
        if strategy == "sample" and temperature <= 0:
            raise ValueError(f"temperature: must be > 0 for sampling; got {temperature}")
        beams = self.limits.get("num_beams")
        if num_beams is not None and strategy == "beam" and beams not in (None, num_beams):
            raise ValueError(
                f"num_beams: the export searches with {beams} beams "
                f"(export.num_beams, fixed at export); got {num_beams}"
            )
        if max_new_tokens is None:
            max_new_tokens = default_new_tokens(self.max_new_tokens)
        inputs = {
            self._text_input: tf.constant(list(prompts), tf.string),
            "max_new_tokens": tf.constant([max_new_tokens], tf.int32),
            "temperature": tf.constant([temperature if strategy == "sample" else 0.0], tf.float32),
            "top_k": tf.constant([top_k], tf.int32),
            "top_p": tf.constant([top_p], tf.float32),
            "seed": tf.constant([seed], tf.int32),
        }
        if self._text_input == "sources":
            inputs["strategy"] = tf.constant([strategy])
            inputs["length_penalty"] = tf.constant([0.0], tf.float32)
        try:
            outputs = self._function(**inputs)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"{self.path}: {self.signature}: {error.message.splitlines()[0]}"
            ) from None
        texts = outputs["generated" if self.continues_prompt else "targets"].numpy()
        return [text.decode("utf-8", errors="replace") for text in texts]


def generate_from_saved_model(path, prompts, strategy="greedy", **options):
    """Generates from `prompts` with an exported model of any generating family.

    Args:
        path: A version directory written by `kzoo export`.
        prompts: A list of prompt (or source) strings.
        strategy: `"greedy"` or `"sample"`; `"beam"` too for seq2seq and T5.
        **options: `ExportedGenerator.generate`'s keyword arguments:
            `max_new_tokens` (the signature clips it into `[1,
            export.max_new_tokens]`; None: 64, or the export's cap if lower),
            `temperature`, `top_k`, `top_p`, `seed` (sampling controls, ignored
            for greedy) and `num_beams` (beam search: must equal the export's
            `export.num_beams` if given).

    Returns:
        A list of `str`: a causal LM's continuations (without the prompts), an
        encoder-decoder's targets.

    Example:
    >>> generate_from_saved_model("saved_models/gpt_tiny/1", ["ta"], strategy="top_k")
    Traceback (most recent call last):
    ...
    ValueError: strategy: an exported model generates with one of ('greedy', 'sample', 'beam'); got 'top_k' (beam: seq2seq and T5 exports only)
    """
    if strategy not in STRATEGIES["sources"]:  # Before loading: a quick answer.
        raise ValueError(
            f"strategy: an exported model generates with one of "
            f"{STRATEGIES['sources']}; got {strategy!r} (beam: seq2seq and T5 exports "
            "only)"
        )
    return ExportedGenerator(path).generate(prompts, strategy=strategy, **options)


def _generation_endpoint(path, signatures):
    for name, text_input in ENDPOINTS:
        if name in signatures and text_input in (signatures[name].structured_input_signature[1]):
            return name, text_input
    names = sorted(name for name in signatures if name != "serving_default")
    if not names:
        raise ValueError(f"{path}: the SavedModel has no signatures to generate with")
    example = next((name for name in names if name != "embed"), names[0])
    raise ValueError(
        f"{path}: its signatures ({', '.join(names)}) do not generate text (kzoo "
        f"generate calls generate or translate); query it with TF Serving "
        f'("signature_name": "{example}") or saved_model_cli run --signature_def '
        f"{example}"
    )


def _export_limits(path):
    info = os.path.join(path, layout.ASSETS_EXTRA, layout.EXPORT_INFO_FILE)
    if not os.path.isfile(info):
        return {}
    with open(info, encoding="utf-8") as f:
        return json.load(f).get("limits") or {}
