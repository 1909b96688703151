"""Optional: kzoo models exported as Hugging Face checkpoints load in `transformers`
with the same outputs. Runs only where `KZOO_REFERENCE_PYTHON` names a Python with
`torch` and `transformers` (CI has neither; `tests/fixtures/hf/` covers the other
direction there)."""

import os
import subprocess
import textwrap

import numpy as np
import pytest

from kzoo.models.hf_checkpoints import export_hf_checkpoint, load_hf_checkpoint
from kzoo.testing.hf_fixtures import hf_fixture

REFERENCE_PYTHON = os.environ.get("KZOO_REFERENCE_PYTHON")
pytestmark = pytest.mark.skipif(
    not REFERENCE_PYTHON, reason="KZOO_REFERENCE_PYTHON (a Python with transformers) not set"
)

# Loads the exported directory with transformers and writes its outputs.
_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    import transformers

    directory, kind, inputs_path, out_path = sys.argv[1:]
    inputs = {k: torch.tensor(v.astype("int64")) for k, v in np.load(inputs_path).items()}
    cls = {
        "bert": transformers.BertForPreTraining,
        "t5": transformers.T5ForConditionalGeneration,
    }.get(kind, transformers.AutoModelForCausalLM)
    model = cls.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        if kind not in ("bert", "t5"):
            logits = model(input_ids=inputs["token_ids"],
                           attention_mask=inputs["padding_mask"]).logits
        elif kind == "bert":
            logits = model(input_ids=inputs["token_ids"],
                           token_type_ids=inputs["segment_ids"],
                           attention_mask=inputs["padding_mask"]).prediction_logits
        else:
            logits = model(input_ids=inputs["encoder_token_ids"],
                           attention_mask=inputs["encoder_padding_mask"],
                           decoder_input_ids=inputs["decoder_token_ids"],
                           decoder_attention_mask=inputs["decoder_padding_mask"]).logits
    np.save(out_path, logits.numpy())
    """
)


def _kzoo_logits(kind, model, reference):
    if kind == "bert":
        inputs = {k: reference[k].astype("int32") for k in ("token_ids", "segment_ids")}
        inputs["padding_mask"] = reference["padding_mask"].astype("int32")
        batch, length = inputs["token_ids"].shape
        positions = np.tile(np.arange(length, dtype="int32"), (batch, 1))
        return inputs, np.asarray(model({**inputs, "mask_positions": positions})["mlm"])
    keys = [k for k in reference if k.endswith(("token_ids", "padding_mask", "segment_ids"))]
    inputs = {k: reference[k].astype("int32") for k in keys}
    return inputs, np.asarray(model(inputs))


@pytest.mark.parametrize(
    "name", ["gpt2_odd", "bert", "t5_v1_0", "t5_v1_1", "llama", "mistral", "qwen2"]
)
def test_transformers_loads_the_export_with_the_same_outputs(name, tmp_path):
    kind = name.split("_")[0]
    directory, reference = hf_fixture(name)
    model, _ = load_hf_checkpoint(directory)
    # Change the weights, so that the reference cannot pass by reading the fixture.
    embedding = model.backbone.token_embedding.embeddings
    embedding.assign(embedding.numpy() * 1.5)
    exported = export_hf_checkpoint(model, tmp_path / "export")
    inputs, expected = _kzoo_logits(kind, model, reference)
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = tmp_path / "reference.py"
    script.write_text(_SCRIPT)
    subprocess.run(
        [
            REFERENCE_PYTHON,
            str(script),
            str(exported),
            kind,
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    actual = np.load(tmp_path / "out.npy")
    mask = inputs["decoder_padding_mask" if kind == "t5" else "padding_mask"].astype(bool)
    np.testing.assert_allclose(actual[mask], expected[mask], atol=1e-4, rtol=0)
