"""`kzoo generate`: text from a run directory or an exported SavedModel, any family."""

import math
import os

from kzoo.commands.directories import check_input_directory
from kzoo.commands.startup import start_tensorflow
from kzoo.export.serving_generate import default_new_tokens


def _check_generation_options(args):
    """The `kzoo generate` numbers, checked alike for runs and exports."""
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens: must be >= 1, got {args.max_new_tokens}")
    for option, value in (("--temperature", args.temperature), ("--top-p", args.top_p)):
        if not math.isfinite(value):
            raise ValueError(f"{option}: must be a finite number, got {value}")
    if args.strategy == "sample" and args.temperature <= 0:
        raise ValueError(
            f"--temperature: must be > 0 for --strategy sample, got {args.temperature}"
        )
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p: must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise ValueError(f"--top-k: must be >= 0 (0: no top-k filter), got {args.top_k}")
    if args.num_beams is not None and args.num_beams < 1:
        raise ValueError(f"--num-beams: must be >= 1, got {args.num_beams}")
    if not -(2**31) <= args.seed < 2**31:
        raise ValueError(f"--seed: must fit in 32 bits, got {args.seed}")


def new_tokens(requested, limit, why):
    """`--max-new-tokens`: `requested` (None: the default) within `[1, limit]`
    (`limit` None: no limit), else a ValueError saying why the limit is `limit`.

    Example:
    >>> new_tokens(None, 63, "the model's max_sequence_length is 64")
    63
    >>> new_tokens(100, 63, "the model's max_sequence_length is 64")
    Traceback (most recent call last):
    ...
    ValueError: --max-new-tokens: must be in [1, 63] (the model's max_sequence_length is 64), got 100
    """
    if requested is None:
        return default_new_tokens(limit)
    if limit is not None and requested > limit:
        raise ValueError(f"--max-new-tokens: must be in [1, {limit}] ({why}), got {requested}")
    return requested


def _decoding_options(args, num_beams):
    """The `generate()` keyword arguments the command line sets."""
    return dict(
        strategy=args.strategy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        num_beams=num_beams,
    )


def run_generate(args):
    _check_generation_options(args)
    check_input_directory(args.model, "run directory or SavedModel")
    start_tensorflow()
    if os.path.isfile(os.path.join(args.model, "saved_model.pb")):
        outputs, continues = _generate_from_export(args)
    else:
        outputs, continues = _generate_from_run(args)
    for prompt, output in zip(args.prompt, outputs):
        # A causal LM continues the prompt; an encoder-decoder answers it.
        print(prompt + output if continues else output)
    return 0


def _generate_from_export(args):
    from kzoo.export.serving_generate import ExportedGenerator

    generator = ExportedGenerator(args.model)
    # Checked here as for a run (the signature would clip it silently).
    max_new_tokens = new_tokens(
        args.max_new_tokens, generator.max_new_tokens, "the export's cap, export.max_new_tokens"
    )
    outputs = generator.generate(
        args.prompt, max_new_tokens=max_new_tokens, **_decoding_options(args, args.num_beams)
    )
    return outputs, generator.continues_prompt


def _generate_from_run(args):
    from kzoo.models import Seq2SeqLM
    from kzoo.training.run_directory import RunDirectory

    run = RunDirectory(args.model)
    model = run.load_model()
    if not hasattr(model, "generate") and not hasattr(model, "generate_ids"):
        from kzoo.export.bert_signatures import MAIN_SIGNATURES

        served = MAIN_SIGNATURES.get(type(model).__name__)
        raise ValueError(
            f"{args.model}: holds a {type(model).__name__}, which does not generate "
            "text; kzoo evaluate scores it"
            + (
                f", and kzoo export makes a SavedModel whose {served!r} signature TF Serving serves"
                if served
                else ""
            )
        )
    capacity = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
    max_new_tokens = new_tokens(
        args.max_new_tokens,
        None if capacity is None else int(capacity) - 1,
        f"the model's max_sequence_length is {capacity}",
    )
    if hasattr(model, "generate"):
        outputs = model.generate(
            args.prompt,
            max_new_tokens=max_new_tokens,
            **_decoding_options(args, args.num_beams or 4),
            jit_compile=False if args.no_xla else "auto",
        )
        return outputs, not isinstance(model, Seq2SeqLM)
    # The LSTM: token ids in and out, as its export generates.
    from kzoo.export.causal_lm_reference import generate_texts

    if args.strategy == "beam":
        raise ValueError(
            f"--strategy beam: a {type(model).__name__} decodes greedily or by sampling"
        )
    outputs = generate_texts(
        model,
        run.tokenizer(),
        args.prompt,
        max_new_tokens,
        temperature=args.temperature if args.strategy == "sample" else 0.0,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    return outputs, True
