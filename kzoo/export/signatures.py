"""The one interface every exported family implements, and the registry that picks it.

A family's `ServingSignatures` subclass says everything `kzoo export` and
`kzoo check-serving` need to know about it:

    from_model(model, export_settings)  the signatures of a trained model
    input_specs()                       `{endpoint: {input: TensorSpec}}`, the
                                        default endpoint (`serving_default`) first
    <endpoint>(...)                     one method per endpoint: tensors in, a dict
                                        of batch-first tensors out
    sample_requests()                   the requests the export ships (warmup,
                                        REST examples, the check-serving comparison)
    reference_outputs(request)          the Keras model's answers to one of them
    expected_fields(), export_info()    what else `expected_outputs.json` and
                                        `kzoo_export.json` record (tolerances, limits)

`kzoo.export.saved_model` writes the SavedModel and its `assets.extra` from these
alone, for every family. `signatures_class(model)` looks the model's class up in
`SIGNATURES` (its module is imported then): a new family adds its module and one
line there.

The families that generate text (`causal_lm_signatures`, `seq2seq_signatures`)
share the rest of this module: how their sample requests are built and how the
Keras reference reads them back (`sample_request`, `GREEDY`, `SAMPLED`,
`decoding_inputs`, `reference_settings`, `detokenized`), and the graph steps that
check and clip decoding inputs (`sampling_settings`, `checked_strategy`,
`unpadded_rows`, `round_up`).
"""

import importlib

import tensorflow as tf

from kzoo.export.input_policy import any_rank, declared_shape, per_row, shared_value
from kzoo.models.text_generation import STRATEGIES

SERVING_DEFAULT = "serving_default"
FLOAT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
# A quantized model's int8 layers round their inputs to int8 per token: a float
# difference of one ulp between the SavedModel's graph and the Keras reference
# (another kernel, another order of sums) can move an input by one step, which
# moves the output by about the quantization error itself (`kzoo quantize` keeps
# int8 within 2% of float32): compared to 1%, not to float32's last digits.
QUANTIZED_TOLERANCE = {"rtol": 1e-2, "atol": 1e-3}

# The generation families' sample requests: new tokens, greedy and sampled settings.
SAMPLE_NEW_TOKENS = 8
GREEDY = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
SAMPLED = {"temperature": 0.8, "top_k": 20, "top_p": 0.95, "seed": 7}
# The sampling inputs of their generation endpoints, in argument order.
SAMPLING_SPECS = {
    "temperature": any_rank("temperature", tf.float32),
    "top_k": any_rank("top_k", tf.int32),
    "top_p": any_rank("top_p", tf.float32),
    "seed": any_rank("seed", tf.int32),
}

# Model class name -> "module:class" of its signatures, imported on first use.
SIGNATURES = {
    "GPTCausalLM": "kzoo.export.causal_lm_signatures:CausalLMSignatures",
    "LlamaCausalLM": "kzoo.export.causal_lm_signatures:CausalLMSignatures",
    "LSTMLanguageModel": "kzoo.export.causal_lm_signatures:CausalLMSignatures",
    "Seq2SeqLM": "kzoo.export.seq2seq_signatures:Seq2SeqSignatures",
    "BertPretrainer": "kzoo.export.bert_signatures:BertSignatures",
    "BertClassifier": "kzoo.export.bert_signatures:BertSignatures",
    "BertTokenClassifier": "kzoo.export.bert_signatures:BertSignatures",
    "BertQuestionAnswerer": "kzoo.export.bert_signatures:BertSignatures",
}


def signatures_class(model, where="the model"):
    """The `ServingSignatures` subclass serving `model` (its class or a base class
    registered in `SIGNATURES`).

    Args:
        model: A Keras model.
        where: What the error message calls the model (e.g. the run directory).

    Raises:
        ValueError: No family exports this model; the message lists those that do.

    Example:
    >>> signatures_class(object(), where="runs/x")
    Traceback (most recent call last):
    ...
    ValueError: runs/x: holds a object; kzoo export supports BertClassifier, ...
    """
    for cls in type(model).__mro__:
        if cls.__name__ in SIGNATURES:
            module, name = SIGNATURES[cls.__name__].split(":")
            return getattr(importlib.import_module(module), name)
    raise ValueError(
        f"{where}: holds a {type(model).__name__}; kzoo export supports "
        f"{', '.join(sorted(SIGNATURES))}"
    )


class ServingSignatures:
    """The serving signatures of one model family (subclass it per family).

    A subclass sets `model` and `tokenizer` and implements `from_model`,
    `input_specs`, one method per endpoint and `sample_requests`; the other
    methods have defaults that a family overrides where it differs.

    Endpoint methods are plain functions of tensors, wrapped by
    `keras.export.ExportArchive.add_endpoint` with `input_specs()`; declaring
    inputs with any rank (`input_policy.any_rank`) and checking them in the graph
    is the family's job.
    """

    model = None
    tokenizer = None
    # True for families that decode a token at a time: `export_run` then stores
    # their dense kernels by rows for the no-XLA export (`kernels_by_rows`).
    decodes_tokens = False

    @classmethod
    def from_model(cls, model, export_settings, xla=False, run=None):
        """The signatures of a trained `model`.

        Args:
            model: The Keras model (`signatures_class(model)` is `cls`).
            export_settings: The validated `export` section of its recipe.
            xla: Compile the model calls with XLA.
            run: The `kzoo.training.run_directory.RunDirectory` it was loaded
                from, for what the model does not carry itself; or None.
        """
        raise NotImplementedError

    def input_specs(self):
        """`{endpoint: {input: tf.TensorSpec}}`, the default endpoint first."""
        raise NotImplementedError

    def sample_requests(self):
        """A list of `{"signature_name", "inputs": {name: list}}`, batch-first:
        each endpoint (and `serving_default`) at least once."""
        raise NotImplementedError

    @property
    def default_signature(self):
        """The endpoint TF Serving calls `serving_default`."""
        return next(iter(self.input_specs()))

    def all_input_specs(self):
        """`input_specs()` with `serving_default` (an alias of the default) added."""
        specs = self.input_specs()
        return {**specs, SERVING_DEFAULT: specs[self.default_signature]}

    def output_dtypes(self):
        """`{endpoint: {output: dtype name}}` for `kzoo_export.json`, or None."""
        return None

    def signature_specs(self):
        """Every endpoint's input names, dtypes and shapes (None: any rank, checked
        in the graph), and output dtypes where `output_dtypes` gives them: the
        `signatures` of `kzoo_export.json`."""
        outputs = self.output_dtypes()
        specs = {}
        for name, inputs in self.all_input_specs().items():
            specs[name] = {
                "inputs": {
                    key: {"dtype": spec.dtype.name, "shape": declared_shape(spec)}
                    for key, spec in inputs.items()
                }
            }
            if outputs is not None:
                source = self.default_signature if name == SERVING_DEFAULT else name
                specs[name]["outputs"] = outputs[source]
        return specs

    def trackables(self):
        """What the SavedModel must hold besides the endpoints' own variables."""
        return [self.model, self.tokenizer]

    def reference_outputs(self, request):
        """The Keras-side answer to one sample request, JSON-ready; by default the
        endpoint function run eagerly on the Keras model."""
        name = request["signature_name"]
        if name == SERVING_DEFAULT:
            name = self.default_signature
        specs = self.input_specs()[name]
        args = [tf.constant(request["inputs"][key], spec.dtype) for key, spec in specs.items()]
        outputs = getattr(self, name)(*args)
        return {key: to_json(value) for key, value in outputs.items()}

    def expected_fields(self):
        """The fields of `expected_outputs.json` besides `requests`: how close
        `kzoo check-serving` wants floats."""
        return {"float_tolerance": float_tolerance(self.model)}

    def export_info(self):
        """Fields `kzoo_export.json` adds for this family (its limits)."""
        return {}


def kernels_by_rows(model):
    """Stores every kzoo `Dense` kernel of `model` by rows
    (`kzoo.layers.dense.Dense.store_kernel_by_rows`: the same outputs, faster
    matrix-vector products without XLA); returns how many. Only for a model
    loaded for export, before it runs: it can no longer be saved, and functions
    it has compiled already would compute with the old layout.

    Raises:
        ValueError: `model` has compiled its generation or prediction already.
    """
    from kzoo.layers.dense import Dense

    generation = getattr(model, "_generate_functions", None)
    if getattr(generation, "by_key", None) or getattr(model, "predict_function", None):
        raise ValueError(
            "kernels_by_rows: the model has compiled functions that would keep the "
            "old kernel layout; call it on a freshly loaded model"
        )
    return sum(
        layer.store_kernel_by_rows()
        for layer in model._flatten_layers()
        if isinstance(layer, Dense)
    )


def float_tolerance(model):
    """How close served floats must be to the Keras model's: `QUANTIZED_TOLERANCE`
    when any of its layers is quantized, else `FLOAT_TOLERANCE`."""
    quantized = any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())
    return QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE


def run_config(run):
    """The config of `run` (a `RunDirectory`, or None: `{}`), for a family's
    `run_settings`."""
    return run.config() if run is not None and run.has_config() else {}


def run_tokenizer(model, run):
    """The model's tokenizer, else the one trained into `run`."""
    return run.tokenizer(model) if run is not None else model.tokenizer


def to_json(tensor):
    """A tensor as nested lists, bytes decoded as UTF-8."""
    array = tensor.numpy()
    if array.dtype == object:
        return _decode(array.tolist())
    return array.tolist()


def _decode(values):
    if isinstance(values, list):
        return [_decode(v) for v in values]
    return values.decode("utf-8", errors="replace")


# --- Shared by the generation families ---------------------------------------------


def sample_request(signature_name, **inputs):
    """One sample request: `{"signature_name", "inputs": {name: list}}`."""
    return {"signature_name": signature_name, "inputs": inputs}


def decoding_inputs(batch, max_new_tokens, settings):
    """Decoding inputs repeated per row, so each row is a valid REST instance.

    Example:
    >>> decoding_inputs(2, 8, {"seed": 0})
    {'max_new_tokens': [8, 8], 'seed': [0, 0]}
    """
    inputs = {"max_new_tokens": max_new_tokens, **settings}
    return {key: [value] * batch for key, value in inputs.items()}


def reference_settings(inputs, max_new_tokens):
    """The decoding settings of a request's inputs clipped as the signatures clip
    them (a request shares them: their first values are used), for the Keras
    reference; `max_new_tokens` is the export's cap.

    Example:
    >>> reference_settings({"max_new_tokens": [0], "temperature": [0.5], "top_k": [-2],
    ...                     "top_p": [2.0], "seed": [3]}, 4)
    {'max_new_tokens': 1, 'temperature': 0.5, 'top_k': 0, 'top_p': 1.0, 'seed': 3}
    """
    return {
        "max_new_tokens": min(max(int(inputs["max_new_tokens"][0]), 1), max_new_tokens),
        "temperature": float(inputs["temperature"][0]),
        "top_k": max(int(inputs["top_k"][0]), 0),
        "top_p": min(max(float(inputs["top_p"][0]), 1e-6), 1.0),
        "seed": int(inputs["seed"][0]),
    }


def detokenized(tokenizer, ids):
    """One id list as a Python string, invalid UTF-8 replaced as `to_json` does."""
    text = tokenizer.detokenize([ids] if ids else [[]]).numpy()[0]
    return text.decode("utf-8", errors="replace")


def sampling_settings(batch, max_new_tokens, cap, temperature, top_k, top_p, seed):
    """The checked decoding inputs of a generation endpoint: per-row
    `max_new_tokens` clipped into [1, cap], then the temperature, top_k, top_p
    and seed shared by the batch (`input_policy.shared_value`)."""
    return (
        tf.clip_by_value(per_row(max_new_tokens, batch, "max_new_tokens"), 1, cap),
        shared_value(temperature, batch, "temperature", 0.0),
        tf.maximum(shared_value(top_k, batch, "top_k", 0), 0),
        tf.clip_by_value(shared_value(top_p, batch, "top_p", 1.0), 1e-6, 1.0),
        shared_value(seed, batch, "seed", 0),
    )


def checked_strategy(strategy):
    """`strategy` if it is one of `text_generation.STRATEGIES`, else
    InvalidArgument naming them."""
    check = tf.debugging.Assert(
        tf.reduce_any(tf.equal(tf.constant(STRATEGIES), strategy)),
        [f"strategy: expected one of {', '.join(STRATEGIES)}; got", strategy],
    )
    with tf.control_dependencies([check]):
        return tf.identity(strategy)


def unpadded_rows(ids, name):
    """The rows of right-padded int32 `ids` (a matrix) up to their last non-zero
    id, ragged; a row without one is InvalidArgument naming input `name`."""
    present = tf.cast(ids != 0, tf.int32)
    positions = tf.range(1, tf.shape(ids)[1] + 1)[None, :]
    # Up to the last non-zero id (0 for a row of zeros, or no columns).
    lengths = tf.reduce_max(tf.pad(present * positions, [[0, 0], [0, 1]]), axis=1)
    check = tf.debugging.Assert(
        tf.reduce_all(lengths >= 1),
        [f"{name}: every row needs at least one non-zero id; got lengths", lengths],
    )
    with tf.control_dependencies([check]):
        return tf.RaggedTensor.from_tensor(ids, lengths=lengths)


def round_up(length, capacity=None):
    """`kzoo.models.text_generation.round_up` on an int32 tensor: a power of two
    (at least 1), at most `capacity` (None: unbounded)."""
    power = next_power_of_two(tf.maximum(length, 1))
    return power if capacity is None else tf.minimum(power, capacity)


def next_power_of_two(n):
    """The smallest power of two >= n (n >= 1), for an int32 scalar tensor (buffers
    are rounded up as `kzoo.models.text_generation.round_up` rounds them)."""
    x = n - 1
    for shift in (1, 2, 4, 8, 16):
        x = tf.bitwise.bitwise_or(x, tf.bitwise.right_shift(x, shift))
    return x + 1
