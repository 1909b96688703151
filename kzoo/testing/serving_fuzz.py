"""Serving fuzz: hostile requests, the policy's verdict, output checks.

Shared by tests/export/test_serving_fuzz.py and benchmarks/fuzz_serving.py; the
policy itself is documented in kzoo/export/input_policy.py.
"""

import os

from kzoo.testing.tiny_runs import EXPORTS, SEQ2SEQ_EXPORT
from kzoo.tokenizers import load_tokenizer

MAX_NEW_TOKENS = {
    "gpt": EXPORTS["gpt"]["max_new_tokens"],
    "llama": EXPORTS["llama"]["max_new_tokens"],
    "lstm": EXPORTS["lstm"]["max_new_tokens"],
    "seq2seq": SEQ2SEQ_EXPORT["max_new_tokens"],
    "t5": SEQ2SEQ_EXPORT["max_new_tokens"],
}
# The input that sets the batch size, and those that must come one per row of it.
PRIMARY = ("prompts", "texts", "sources", "questions", "token_ids", "source_ids")
PAIRED = ("text_pairs", "targets", "contexts", "prompt_lengths")
MATRICES = ("token_ids", "source_ids")  # [batch, length]; every other input a vector
SHARED_OPTIONS = ("strategy", "temperature", "top_k", "top_p", "seed", "length_penalty")
FLOAT_OPTIONS = ("temperature", "top_p", "length_penalty")
STRATEGIES = ("greedy", "sample", "beam")
INT32 = (-(2**31), 2**31 - 1)


class TinyExport:
    """A loaded tiny export: its `signatures`, and what requests to it depend on."""

    def __init__(self, family, path, loaded, vocabulary_size, max_new_tokens):
        self.family, self.path = family, path
        self.loaded = loaded  # owns the resources (variables, tokenizer) of signatures
        self.signatures = loaded.signatures
        self.vocabulary_size, self.max_new_tokens = vocabulary_size, max_new_tokens

    @classmethod
    def load(cls, family, path):
        import tensorflow as tf

        directory = os.path.dirname(os.path.dirname(os.path.dirname(path)))
        shared = family in ("bert", "bert_pairs")
        run_dir = os.path.join(directory, "bert_run" if shared else f"{family}_run")
        return cls(
            family,
            path,
            tf.saved_model.load(path),
            int(load_tokenizer(run_dir).vocabulary_size),
            MAX_NEW_TOKENS.get(family),
        )

    def specs(self, name):
        return self.signatures[name].structured_input_signature[1]


FAULTS = ("rows", "count", "unequal", "value", "ids", "lengths", "rank")


def draw_request(draw, export, name):
    """Inputs (Python lists) for signature `name`, drawn with hypothesis's `draw`:
    any text or bytes (invalid UTF-8, NUL, empty, too long), 0 to 3 rows, a vector
    of 1 value sent as a scalar or not, and up to two faults (hypothesis favours
    none): a paired input with another number of rows, an option with a wrong
    count or unequal shared values, options from the whole float range (NaN, inf)
    or an unknown strategy, bad ids or lengths, an input of the wrong rank (a
    vector as a matrix, ids as a vector or a scalar). `KEY_rank` entries give the
    rank an input is sent with when it is not its own (see `call_signature`)."""
    from hypothesis import strategies as st

    specs = export.specs(name)
    vocabulary = export.vocabulary_size
    faults = draw(st.sets(st.sampled_from(FAULTS), max_size=2))
    batch = draw(st.integers(0, 3))
    text = st.one_of(
        st.text(max_size=40),
        st.text(alphabet="tamolnrikv ,.", min_size=150, max_size=300),  # too long
        st.binary(max_size=40),  # invalid UTF-8, NUL bytes
        st.sampled_from(["", " ", " \t\n ", "\x00", "[MASK]", "ta [MASK] mo [MASK]"]),
    ).map(lambda t: t.encode("utf-8") if isinstance(t, str) else t)
    number = lambda low, high: st.one_of(st.integers(low, high), st.integers(*INT32))
    real = st.one_of(st.floats(-2, 2, width=32), st.sampled_from([0.0, 1.0, 1e-30, 1e30]))
    strategy = st.sampled_from(STRATEGIES)
    if "value" in faults:
        real = st.one_of(real, st.floats(width=32))  # NaN, inf
        strategy = st.sampled_from(STRATEGIES + ("nucleus", ""))
    option = {
        "max_new_tokens": number(-2, (export.max_new_tokens or 8) + 2),
        "temperature": real,
        "top_p": real,
        "length_penalty": real,
        "top_k": number(-2, vocabulary + 2),
        "seed": st.integers(*INT32),
        "strategy": strategy,
    }
    options = [k for k in specs if k in option]
    miscounted = draw(st.sampled_from(options)) if options and "count" in faults else None
    shared = [k for k in options if k in SHARED_OPTIONS]
    unequal = draw(st.sampled_from(shared)) if shared and "unequal" in faults else None
    paired = [k for k in specs if k in PAIRED]
    misrowed = draw(st.sampled_from(paired)) if paired and "rows" in faults else None
    rows = lambda key: (
        draw(st.integers(0, 4).filter(lambda n: n != batch)) if key == misrowed else batch
    )

    inputs = {}
    for key in sorted(specs, key=lambda k: k == "prompt_lengths"):  # after token_ids
        if key in option:
            count = draw(st.sampled_from([1, batch]))
            if key == miscounted:
                count = draw(st.integers(0, 4).filter(lambda n: n not in (1, batch)))
            if key == unequal and count > 1:
                inputs[key] = [draw(option[key]) for _ in range(count)]
            else:
                inputs[key] = [draw(option[key])] * count
        elif key in ("token_ids", "source_ids"):
            width = draw(st.integers(1, 6)) if "ids" not in faults else draw(st.integers(0, 6))
            low = 1 if key == "source_ids" else 0
            inputs[key] = [
                [draw(st.integers(low, vocabulary - 1)) for _ in range(width)] for _ in range(batch)
            ]
            if batch and width and "ids" in faults:  # 0s from a column, maybe a bad id
                row = inputs[key][draw(st.integers(0, batch - 1))]
                column = draw(st.integers(0, width - 1))
                row[column:] = [0] * (width - column)
                row[column] = draw(st.sampled_from([0, -1, vocabulary, INT32[1]]))
            inputs[key + "_width"] = width
        elif key == "prompt_lengths":
            width = inputs["token_ids_width"]
            lengths = (
                st.integers(-1, width + 1) if "lengths" in faults else st.integers(1, max(width, 1))
            )
            inputs[key] = [draw(lengths) for _ in range(rows(key))]
        else:
            inputs[key] = [draw(text) for _ in range(rows(key))]
    for key in specs:  # ranks 0-2: one value as a scalar, or a fault
        if key not in MATRICES and len(inputs[key]) == 1 and draw(st.booleans()):
            inputs[key + "_rank"] = 0
    if "rank" in faults:
        key = draw(st.sampled_from(sorted(specs)))
        inputs[key + "_rank"] = draw(st.sampled_from([0, 1])) if key in MATRICES else 2
    return inputs


def call(served, signature, **inputs):
    """Calls `served.signatures[signature]` with lists/arrays cast to its input
    dtypes; returns NumPy outputs."""
    import tensorflow as tf

    fn = served.signatures[signature]
    specs = fn.structured_input_signature[1]
    outputs = fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def strings(values):
    """A string output as a list of `str`."""
    import numpy as np

    return [v.decode("utf-8") for v in np.asarray(values).ravel().tolist()]


def call_signature(export, name, inputs):
    """Calls signature `name` with `draw_request`'s inputs, each with its rank;
    returns NumPy outputs."""
    import numpy as np
    import tensorflow as tf

    specs = export.specs(name)
    tensors = {}
    for key, spec in specs.items():
        value, rank = inputs[key], inputs.get(key + "_rank")
        if key in MATRICES:
            value = np.array(value, "int64").reshape(len(value), inputs[key + "_width"])
            value = np.clip(value, *INT32)
            if rank is not None:  # a vector, or a scalar
                value = value.ravel() if rank == 1 else (value.ravel()[:1].tolist() or [0])[0]
        elif rank == 0:
            value = value[0]
        elif rank == 2:
            value = [value] if not value or len(value) > 1 else [[v] for v in value]
        tensors[key] = tf.constant(value, spec.dtype)
    return {k: v.numpy() for k, v in export.signatures[name](**tensors).items()}


def wrong_ranks(specs, inputs):
    """The inputs sent with a rank the policy rejects: ids not a matrix, any other
    input a matrix (a scalar is 1 value or one row)."""
    return {
        key for key in specs if inputs.get(key + "_rank") in ((0, 1) if key in MATRICES else (2,))
    }


def valid_request(export, name):
    """A valid one-row request to signature `name` (inputs as `draw_request`'s)."""
    specs = export.specs(name)
    options = {
        "max_new_tokens": 2,
        "strategy": b"greedy",
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": 0,
        "length_penalty": 0.0,
    }
    inputs = {}
    for key in specs:
        if key in MATRICES:
            inputs[key], inputs[key + "_width"] = [[1]], 1
        elif key == "prompt_lengths":
            inputs[key] = [1]
        else:
            inputs[key] = [options.get(key, b"ta mo")]
    return inputs


def invalid_inputs(export, name, inputs):
    """The inputs that make the request an InvalidArgument under
    kzoo/export/input_policy.py (empty: it must succeed)."""
    import math

    specs = export.specs(name)
    batch = len(next(inputs[k] for k in PRIMARY if k in specs))
    bad = {k for k in PAIRED if k in specs and len(inputs[k]) != batch}
    bad |= wrong_ranks(specs, inputs)
    if "max_new_tokens" in specs and len(inputs["max_new_tokens"]) not in (1, batch):
        bad.add("max_new_tokens")
    for key in SHARED_OPTIONS:
        values = inputs.get(key) if key in specs else None
        if values is None:
            continue
        if key in FLOAT_OPTIONS and not all(math.isfinite(v) for v in values):
            bad.add(key)
        elif len(values) not in (1, batch) or len(set(values)) > 1:
            bad.add(key)
        elif key == "strategy" and values and values[0] not in STRATEGIES:
            bad.add(key)
    vocabulary = range(export.vocabulary_size)
    if "token_ids" in specs and "prompt_lengths" not in bad:
        width = inputs["token_ids_width"]
        if any(not 1 <= n <= width for n in inputs["prompt_lengths"]):
            bad.add("prompt_lengths")
        elif any(
            t not in vocabulary
            for row, n in zip(inputs["token_ids"], inputs["prompt_lengths"])
            for t in row[:n]
        ):
            bad.add("token_ids")
    if "source_ids" in specs:
        for row in inputs["source_ids"]:
            used = row[: max([i + 1 for i, t in enumerate(row) if t] or [0])]
            if not used or any(t not in vocabulary for t in used):
                bad.add("source_ids")
    return bad


def check_outputs(export, name, inputs, outputs):
    """Asserts the outputs of a successful call: one row per input row, the
    declared dtypes, finite floats, valid UTF-8 strings, and the documented bounds."""
    import numpy as np

    specs = export.specs(name)
    batch = len(next(inputs[k] for k in PRIMARY if k in specs))
    declared = export.signatures[name].structured_outputs
    assert set(outputs) == set(declared), name
    for key, value in outputs.items():
        assert value.dtype == declared[key].dtype.as_numpy_dtype, (name, key, value.dtype)
        assert value.shape[0] == batch, (name, key, value.shape, batch)
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), (name, key, value)
        if value.dtype == object:
            for item in value.ravel():
                item.decode("utf-8")  # string outputs are valid UTF-8
    if "max_new_tokens" in specs and batch:
        cap = np.clip(np.broadcast_to(inputs["max_new_tokens"], [batch]), 1, export.max_new_tokens)
        made = outputs.get("token_count", outputs.get("num_tokens"))
        if "generated_mask" in outputs:
            made = outputs["generated_mask"].sum(axis=1)
        assert (0 <= made).all() and (made <= cap).all(), (name, made, cap)
    if "log_likelihood" in outputs:
        assert (outputs["log_likelihood"] <= 1e-4).all(), outputs["log_likelihood"]
    if "probabilities" in outputs and batch:
        np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    if "start_byte" in outputs:
        assert (0 <= outputs["start_byte"]).all()
        assert (outputs["start_byte"] <= outputs["end_byte"]).all()
    if "scores" in outputs:
        assert ((0 <= outputs["scores"]) & (outputs["scores"] <= 1)).all()


def fuzz_once(export, name, inputs):
    """One fuzz case: "ok" or "invalid" when the signature answered as the policy
    says, else raises AssertionError (or the unexpected exception)."""
    import tensorflow as tf

    bad = invalid_inputs(export, name, inputs)
    try:
        outputs = call_signature(export, name, inputs)
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        assert bad, f"{name}: a valid request was rejected: {message[:500]}"
        assert any(f"{key}:" in message for key in bad), (
            f"{name}: the error names none of {sorted(bad)}: {message[:500]}"
        )
        return "invalid"
    assert not bad, f"{name}: accepted although {sorted(bad)} are invalid"
    check_outputs(export, name, inputs, outputs)
    return "ok"
