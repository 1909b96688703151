"""The Python side of `generate()`, shared by every task model that generates.

The decoding loops themselves are `keras.ops` code in `kzoo.models.decoding`;
this module turns strings into padded id buffers and back, checks the user's
options and keeps one compiled loop per setting. `TextGenerationModel` is the
base of the task models that generate (`GPTCausalLM`, `Seq2SeqLM`).
"""

import numpy as np
from keras import ops

from kzoo.models import decoding
from kzoo.models.task_model import TaskModel

STRATEGIES = ("greedy", "sample", "beam")
# The options of `generate()` and `generate_ids()` that choose the decoding loop
# and steer it (`decoding.decode_with_strategy`).
DECODING_OPTIONS = (
    "strategy",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "num_beams",
    "length_penalty",
)


class TextGenerationModel(TaskModel):
    """A task model that generates: `generate()` on top of the subclass's
    `generate_ids()`.

    A subclass (`GPTCausalLM`, `Seq2SeqLM`) has `backbone.max_sequence_length`
    and `end_token_id`, and gives:
    - `generate_ids(**buffers, max_new_tokens=..., **decoding options,
      use_cache=...)`: the `keras.ops` decoding, returning `(token_ids,
      generated_mask, scores)`;
    - `_generation_buffers(rows, is_text, max_new_tokens)`: the NumPy `buffers`
      for the prompts `rows` (token-id lists; `is_text` if they came from strings).
    `PROMPT_NAME` names a prompt in error messages.
    """

    PROMPT_NAME = "prompt"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._generate_functions = CompiledFunctions()

    def generate(
        self,
        inputs,
        max_new_tokens=32,
        strategy="greedy",
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_beams=4,
        length_penalty=0.0,
        use_cache=True,
        jit_compile="auto",
    ):
        """Generates up to `max_new_tokens` tokens for each prompt (or source).

        Args:
            inputs: A string or list of strings (needs a tokenizer), or a list of
                token-id lists; NumPy arrays and tensors of either work too (a 1-D
                array of ids is one prompt). How prompts become the model's inputs
                (special tokens, what is cut when too long) is said by the
                model's `_generation_buffers`.
            max_new_tokens: Tokens to generate at most per prompt.
            strategy: `"greedy"`, `"sample"` or `"beam"`.
            temperature, top_k, top_p: Sampling controls (`top_k=0` and `top_p=1`
                disable their filters).
            seed: Sampling seed; the same seed gives the same tokens.
            num_beams, length_penalty: Beam search controls.
            use_cache: Decode with the caches (the default) or re-run the whole
                model at every step (same greedy output, slower).
            jit_compile: How the decoding loop compiles on TensorFlow: `"auto"`
                (the default) with XLA, falling back to a `tf.function` without
                XLA, with one `kzoo.jit.XlaFallbackWarning`, where XLA cannot
                compile it; True: with XLA, raising where it cannot; False: without
                XLA. The first call for each setting and input shape compiles (a
                few seconds with XLA). JAX always compiles with XLA.

        Returns:
            The generated tokens only (not the prompt, nor the start and end
            tokens): a string or list of strings for string inputs, else lists
            of ids.
        """
        capacity = self.backbone.max_sequence_length
        check_options(strategy, temperature, max_new_tokens, capacity, jit_compile)
        rows, single, is_text = prompt_rows(inputs)
        rows = input_ids(self, rows, is_text, what=self.PROMPT_NAME)
        buffers = self._generation_buffers(rows, is_text, max_new_tokens)
        fn = self._generate_function(strategy, num_beams, use_cache, jit_compile)
        ids, mask, _ = fn(
            buffers,
            np.int32(max_new_tokens),
            np.float32(temperature),
            np.int32(top_k),
            np.float32(top_p),
            np.int32(seed),
            np.float32(length_penalty),
        )
        rows = generated_ids(ids, mask, self.end_token_id)
        return outputs(self, rows, is_text, single)

    def _generation_buffers(self, rows, is_text, max_new_tokens):
        raise NotImplementedError

    def _decode(self, step, logits, cache, token_ids, prompt_lengths, max_new_tokens, options):
        """`decoding.decode_with_strategy` from a prefilled `cache`, with the
        `DECODING_OPTIONS` found in `options` (`generate_ids`'s `locals()`)."""
        return decoding.decode_with_strategy(
            step,
            ops.cast(logits, "float32"),
            cache,
            token_ids,
            prompt_lengths,
            max_new_tokens,
            self.end_token_id,
            **{key: options[key] for key in DECODING_OPTIONS},
        )

    def _generate_function(self, strategy, num_beams, use_cache, jit_compile="auto"):
        """`generate_ids` compiled once per loop: `fn(buffers, max_new_tokens,
        temperature, top_k, top_p, seed, length_penalty)`."""
        from kzoo.jit import jit_function

        def build():
            def fn(buffers, max_new_tokens, temperature, top_k, top_p, seed, length_penalty):
                return self.generate_ids(
                    **buffers,
                    max_new_tokens=max_new_tokens,
                    strategy=strategy,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    seed=seed,
                    num_beams=num_beams,
                    length_penalty=length_penalty,
                    use_cache=use_cache,
                )

            name = f"{type(self).__name__}.generate(strategy={strategy!r}, use_cache={use_cache})"
            return jit_function(fn, self.variables, jit_compile, name=name)

        key = (strategy, num_beams, use_cache, jit_compile)
        return self._generate_functions.get(key, build)


class CompiledFunctions:
    """Compiled generation loops by settings. A plain object, not a dict, so
    Keras/SavedModel tracking leaves it alone (exports work after generating)."""

    def __init__(self):
        self.by_key = {}

    def get(self, key, build):
        """The function for `key`, built once by `build()`."""
        if key not in self.by_key:
            self.by_key[key] = build()
        return self.by_key[key]


def check_options(strategy, temperature, max_new_tokens, capacity, jit_compile="auto"):
    """Raises a ValueError naming the bad `generate()` argument."""
    from kzoo.jit import check_jit_compile

    check_jit_compile(jit_compile)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; received {strategy!r}")
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling; received {temperature}")
    if not 0 < max_new_tokens < capacity:
        raise ValueError(
            f"max_new_tokens must be in [1, {capacity - 1}] (max_sequence_length "
            f"is {capacity}); received {max_new_tokens}"
        )


def prompt_rows(inputs):
    """`(rows, single, is_text)`: the prompts of `inputs` as a list of strings or
    of id lists, whether one prompt was given, and whether they are text.

    `inputs` is a string, a list of strings or of id lists, or the same as a NumPy
    array or a tensor (bytes are decoded as UTF-8); a 1-D array of ids is one
    prompt.

    Example:
    >>> prompt_rows(np.array([[5, 6], [7, 8]]))
    ([[5, 6], [7, 8]], False, False)
    >>> prompt_rows(np.array([5, 6]))
    ([[5, 6]], True, False)
    >>> prompt_rows(np.array([b"ab", b"c"], dtype=object))
    (['ab', 'c'], False, True)
    """
    if hasattr(inputs, "to_list"):  # a tf.RaggedTensor
        inputs = inputs.to_list()
    elif not isinstance(inputs, (str, bytes, list, tuple)):
        inputs = ops.convert_to_numpy(inputs).tolist()
    if isinstance(inputs, (str, bytes)):
        return [_text(inputs)], True, True
    inputs = list(inputs)
    if inputs and isinstance(inputs[0], (str, bytes)):
        return [_text(text) for text in inputs], False, True
    if inputs and not isinstance(inputs[0], (list, tuple)) and not hasattr(inputs[0], "__len__"):
        return [inputs], True, False  # one prompt of ids
    return inputs, False, False


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def input_ids(model, inputs, is_text, what="prompt"):
    """Token-id lists of `inputs` (strings need `model.tokenizer`)."""
    if not inputs:
        raise ValueError(f"generate() needs at least one {what}; received none")
    if not is_text:
        rows = [[int(t) for t in row] for row in inputs]
        if any(len(row) == 0 for row in rows):
            raise ValueError(f"token-id {what}s must not be empty")
        return rows
    if model.tokenizer is None:
        raise ValueError(
            f"string {what}s need a tokenizer: {type(model).__name__}(..., tokenizer=...)"
        )
    tokenized = model.tokenizer.tokenize(list(inputs))
    tokenized = tokenized.to_list() if hasattr(tokenized, "to_list") else tokenized
    return [[int(t) for t in ids] for ids in tokenized]


def generated_ids(ids, mask, end_id):
    """Per row, the generated ids (`mask`) without the end token."""
    ids, mask = ops.convert_to_numpy(ids), ops.convert_to_numpy(mask)
    return [[int(t) for t in row[keep] if t != end_id] for row, keep in zip(ids, mask)]


def detokenize(tokenizer, ids):
    """One id list back to a Python string. Bytes that are not UTF-8 (a byte-level
    BPE's ids can end inside a character) become U+FFFD, as in the reference
    tokenizers and the exported signatures.

    Example:
    >>> class Bytes:  # a tokenizer whose ids are bytes
    ...     def detokenize(self, rows):
    ...         return [bytes(row) for row in rows]
    >>> detokenize(Bytes(), [0x68, 0x69, 0xC3])
    'hi\ufffd'
    """
    text = tokenizer.detokenize([ids] if ids else [[]])
    text = ops.convert_to_numpy(text) if not isinstance(text, (list, str)) else text
    value = text[0] if not isinstance(text, str) else text
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def outputs(model, rows, is_text, single):
    """What `generate()` returns: strings for string inputs, else id lists."""
    if is_text:
        rows = [detokenize(model.tokenizer, ids) for ids in rows]
    return rows[0] if single else rows


def round_up(length, capacity):
    """The next power of two, capped at `capacity`: buffers of a bounded set of
    shapes, so a compiled loop is traced a few times, not once per length."""
    return min(capacity, 1 << (max(length, 1) - 1).bit_length())


def right_pad(rows, length):
    """`(ids, mask)` int32 arrays of `rows` right-padded with zeros to `length`."""
    ids = np.zeros((len(rows), length), "int32")
    mask = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask
