"""What the no-XLA export does for decoding speed, answering as before: caches written
in place (kzoo.export.in_place_cache), dense kernels stored by rows
(kzoo.export.signatures.kernels_by_rows)."""

import concurrent.futures

import numpy as np
import pytest
import tensorflow as tf

from kzoo.export.causal_lm_reference import GenerationLimits
from kzoo.export.causal_lm_signatures import INPUT_SPECS, CausalLMSignatures
from kzoo.export.in_place_cache import InPlaceCacheStorage
from kzoo.export.saved_model import load_for_export
from kzoo.export.signatures import kernels_by_rows
from kzoo.layers.cache_buffers import CacheStorage, empty_cache, stored_with, write_cache
from kzoo.layers.dense import Dense

LAYERS, LENGTH, HEADS, DIM = 3, 6, 2, 4


def decode_like(storage):
    """A decoding loop's use of caches, traced with `storage`: one cache per
    layer, all of one shape (so grappler could merge their zeros), a prefill of
    two positions, then one write per step whose value depends on every cache
    read of the step before (as a token does). Returns every step's reads.

    (A read that the next write does not depend on may see that write: a test
    that stored the reads without feeding them into the state failed in CI
    under concurrent calls.)"""

    @tf.function(jit_compile=False, autograph=False)
    def run(first):
        batch = tf.shape(first)[0]
        with stored_with(storage):
            caches = [empty_cache((batch, 2, LENGTH, HEADS, DIM), "float32") for _ in range(LAYERS)]
            update = tf.tile(first[:, None, None, None, :], [1, 2, 2, HEADS, 1])
            caches = [write_cache(c, update * (i + 1), 0, axis=2) for i, c in enumerate(caches)]

            def step(index, caches, state, reads):
                new = []
                for i, cache in enumerate(caches):
                    token = tf.tile(state[:, None, None, None, :], [1, 2, 1, HEADS, 1])
                    cache = write_cache(cache, token + float(i), index, axis=2)
                    state = tf.tanh(state + tf.reduce_sum(cache, axis=[1, 2, 3]))
                    new.append(cache)
                # Every read feeds the next token (the next write), as in decoding:
                # InplaceUpdate is safe only then (kzoo/export/in_place_cache.py).
                read = tf.stack(new, axis=1)
                state = state + 1e-3 * tf.reduce_sum(read, axis=[1, 2, 3, 4, 5])[:, None]
                return index + 1, new, state, reads.write(index - 2, read)

            reads = tf.TensorArray(tf.float32, size=LENGTH - 2)
            _, _, _, reads = tf.while_loop(
                lambda index, *_: index < LENGTH, step, (2, caches, first, reads)
            )
        return reads.stack()

    return run


def test_in_place_writes_give_the_functional_writes_values_on_every_call():
    in_place, functional = decode_like(InPlaceCacheStorage()), decode_like(CacheStorage())
    rng = np.random.default_rng(0)
    for batch in (1, 3, 1, 2):  # retraced and repeated: no buffer kept between calls
        first = tf.constant(rng.normal(size=(batch, DIM)), tf.float32)
        np.testing.assert_allclose(in_place(first), functional(first), rtol=1e-6)


def test_concurrent_calls_do_not_share_caches():
    in_place, functional = decode_like(InPlaceCacheStorage()), decode_like(CacheStorage())
    firsts = [tf.fill((2, DIM), 0.1 * n) for n in range(8)]
    expected = [functional(first).numpy() for first in firsts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda first: in_place(first).numpy(), firsts * 3))
    for n, answer in enumerate(answers):
        np.testing.assert_allclose(answer, expected[n % len(firsts)], rtol=1e-6)


def op_types(concrete):
    """Every op type in `concrete`'s graph and the functions it calls."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node)
    for function in graph.library.function:
        nodes.extend(function.node_def)
    return {node.op for node in nodes}


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_the_no_xla_export_decodes_with_in_place_writes(tiny_export, family):
    assert {"InplaceUpdate", "Empty"} <= op_types(tiny_export(family).signatures["generate_ids"])


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_concurrent_requests_to_the_export_answer_as_serial_ones(tiny_export, family):
    from kzoo.testing.serving_fuzz import call

    export = tiny_export(family)
    greedy = dict(max_new_tokens=[8], temperature=[0.0], top_k=[0], top_p=[1.0], seed=[0])
    if family == "t5":
        greedy.update(strategy=["beam"], length_penalty=[0.0])  # beam search reorders caches
    texts = [["ta mo"], ["ta", "mo ta"], ["lorem", "ta", "m"]]
    name = "generate"
    key = "prompts" if family == "gpt" else "sources"
    serial = [call(export.loaded, name, **{key: t}, **greedy) for t in texts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda t: call(export.loaded, name, **{key: t}, **greedy), texts * 4)
        )
    for n, answer in enumerate(answers):
        for output, value in serial[n % len(texts)].items():
            np.testing.assert_array_equal(answer[output], value)


@pytest.mark.parametrize("xla", [False, True])
def test_only_decoding_without_xla_writes_in_place(make_run, xla):
    model, tokenizer = load_for_export(make_run("gpt"))
    signatures = CausalLMSignatures(model, tokenizer, GenerationLimits(4, 16, None), xla=xla)
    specs = INPUT_SPECS["generate_ids"].values()
    concrete = tf.function(signatures.generate_ids).get_concrete_function(*specs)
    assert ("InplaceUpdate" in op_types(concrete)) is not xla


@pytest.mark.parametrize("xla", [False, True])
def test_the_no_xla_export_stores_the_kernels_by_rows(make_run, tmp_path, xla):
    from unittest import mock

    from kzoo.export import export_run, saved_model

    with mock.patch.object(saved_model, "write_saved_model") as write:
        with mock.patch.object(saved_model, "write_assets_extra") as assets:
            export_run(make_run("gpt"), out_dir=str(tmp_path), xla=xla)
    dense = [
        layer
        for layer in write.call_args.args[1].model._flatten_layers()
        if isinstance(layer, Dense)
    ]
    assert len(dense) == 6  # query, key, value, output, and the two feed-forward
    assert all(layer.kernel_by_rows is not xla for layer in dense)
    assert assets.call_args.args[3]["kernels_by_rows"] == (0 if xla else 6)


def test_kernels_by_rows_give_the_same_tokens_and_logits(make_run):
    run_dir = make_run("gpt")
    prompts, inputs = [[1, 5, 6], [2]], {"token_ids": np.array([[1, 5, 6, 7]])}
    inputs["padding_mask"] = np.ones((1, 4), "int32")
    by_rows, keras_layout = load_for_export(run_dir)[0], load_for_export(run_dir)[0]
    assert kernels_by_rows(by_rows) == 6
    tokens, logits = {}, {}
    for name, model in (("by_rows", by_rows), ("keras", keras_layout)):
        tokens[name] = model.generate(prompts, max_new_tokens=6, jit_compile=False)
        logits[name] = model.predict(inputs, verbose=0)
    assert tokens["by_rows"] == tokens["keras"]
    np.testing.assert_allclose(logits["by_rows"], logits["keras"], rtol=1e-5, atol=1e-6)
    # Compiled functions would keep the old layout: refused.
    with pytest.raises(ValueError, match="has compiled functions"):
        kernels_by_rows(keras_layout)
