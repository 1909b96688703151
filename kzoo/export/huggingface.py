"""`kzoo export RUN --format huggingface`: a run as a Hugging Face checkpoint directory.

The directory holds `config.json` and `model.safetensors` (float32; see
`kzoo.models.hf_checkpoints`) and the tokenizer files the reference libraries read
(`kzoo.tokenizers.hf_tokenizer_files`): `transformers`' `AutoModel*.from_pretrained`
and `AutoTokenizer.from_pretrained` load it with the same outputs and ids, and
`kzoo import` reads it back. GPT-2 (`GPTCausalLM`), BERT (any BERT task model: its
encoder, plus the pretraining heads of a `BertPretrainer`) and T5 (`Seq2SeqLM` on a
`T5Backbone`) runs export; imported runs included. The directory is written all
at once.
"""

import os

from kzoo import staged_files
from kzoo.training.run_directory import RunDirectory


def export_huggingface(run_dir, out_dir, overwrite=False):
    """Writes the run `run_dir` as a Hugging Face checkpoint in `out_dir`.

    Args:
        run_dir: A finished (or imported) run directory.
        out_dir: The directory to write; it must not exist or be empty, unless
            `overwrite`.
        overwrite: Replace an existing `out_dir`.

    Returns:
        `out_dir`.

    Raises:
        ValueError: The run's model has no Hugging Face form (the message names
            the supported ones).
    """
    from kzoo.models.hf_checkpoints import export_hf_checkpoint, model_type_of
    from kzoo.tokenizers.hf_tokenizer_files import save_hf_tokenizer

    run = RunDirectory(run_dir)
    model = run.load_model()
    model_type_of(model)  # Refuse an unsupported model before writing anything.
    tokenizer = run.tokenizer(model)

    def fill(tmp):
        export_hf_checkpoint(model, tmp)
        save_hf_tokenizer(tokenizer, tmp)

    return staged_files.atomic_directory(os.fspath(out_dir), fill, replace=overwrite)
