"""The committed Hugging Face fixtures and random GPT-2 checkpoints of any size.

`tests/fixtures/hf/<name>/` holds tiny random checkpoints written by
`transformers` and their outputs (`reference.npz`), made by
`scripts/make_hf_fixtures.py`. `write_random_gpt2_checkpoint` writes a GPT-2
checkpoint with NumPy alone (no torch), e.g. GPT-2-small-shaped (124M) for
`benchmarks/import_checkpoint.py`.
"""

import os

import numpy as np

from kzoo.models.safetensors_checkpoint import write_safetensors
from kzoo.testing.checkout import ROOT

HF_FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")
GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)


def hf_fixture(name):
    """`(directory, reference arrays)` of the committed fixture `name`."""
    directory = os.path.join(HF_FIXTURES, name)
    with np.load(os.path.join(directory, "reference.npz")) as reference:
        return directory, dict(reference)


def _gpt2_tensors(config, dtype, seed):
    rng = np.random.default_rng(seed)
    d, inner = config["n_embd"], config.get("n_inner") or 4 * config["n_embd"]

    def normal(*shape):
        return (0.02 * rng.standard_normal(shape, "float32")).astype(dtype)

    def ones(n):
        return np.ones(n, dtype)

    def zeros(n):
        return np.zeros(n, dtype)

    yield "wte.weight", normal(config["vocab_size"], d)
    yield "wpe.weight", normal(config["n_positions"], d)
    for i in range(config["n_layer"]):
        p = f"h.{i}."
        yield p + "ln_1.weight", ones(d)
        yield p + "ln_1.bias", zeros(d)
        yield p + "attn.c_attn.weight", normal(d, 3 * d)
        yield p + "attn.c_attn.bias", zeros(3 * d)
        yield p + "attn.c_proj.weight", normal(d, d)
        yield p + "attn.c_proj.bias", zeros(d)
        yield p + "ln_2.weight", ones(d)
        yield p + "ln_2.bias", zeros(d)
        yield p + "mlp.c_fc.weight", normal(d, inner)
        yield p + "mlp.c_fc.bias", zeros(inner)
        yield p + "mlp.c_proj.weight", normal(inner, d)
        yield p + "mlp.c_proj.bias", zeros(d)
    yield "ln_f.weight", ones(d)
    yield "ln_f.bias", zeros(d)


def write_random_gpt2_checkpoint(directory, dtype="float32", seed=0, **config):
    """Writes a random GPT-2 checkpoint as `GPT2Model.save_pretrained` lays it out
    (no `transformer.` prefix); defaults to GPT-2 small's shape (124M parameters).

    Args:
        directory: Where to write `config.json` and `model.safetensors`.
        dtype: `"float32"` or `"float16"`.
        seed: Seed of the random weights.
        **config: Overrides of `GPT2_SMALL` (`vocab_size`, `n_embd`, ...).

    Returns:
        `directory`.

    Example:
    >>> import tempfile
    >>> from kzoo.models.hf_checkpoints import load_hf_checkpoint
    >>> path = write_random_gpt2_checkpoint(tempfile.mkdtemp() + "/tiny", vocab_size=30,
    ...                                     n_positions=8, n_embd=8, n_layer=1, n_head=2)
    >>> model, report = load_hf_checkpoint(path)
    >>> model.backbone.vocabulary_size, report.unused
    (30, [])
    """
    config = {**GPT2_SMALL, **config}
    hf_config = {"model_type": "gpt2", "architectures": ["GPT2Model"], **config}
    return write_safetensors(_gpt2_tensors(config, dtype, seed), directory, hf_config)
