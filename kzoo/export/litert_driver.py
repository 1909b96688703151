"""Running a `kzoo export --format litert` directory with the LiteRT interpreter.

`LiteRTModel(directory)` runs any signature by name. `LiteRTGenerator` is the
driver of a causal LM's decoding-step model: it tokenizes the prompt with the
tokenizer shipped beside `model.tflite`, runs `prefill` once and `decode` once per
new token, feeding the KV caches back, and detokenizes; greedy, as
`GPTCausalLM.generate(prompt, max_new_tokens)` decodes, with the same tokens.

    python -m kzoo.export.litert_driver DIR --prompt "Once upon" [--max-new-tokens N]
    python -m kzoo.export.litert_driver DIR --text "a sentence" [--text ...]

The first prints the generated text; the second runs a BERT export's main
signature and prints its outputs as JSON. A causal LM with a plain SentencePiece
tokenizer needs only `ai-edge-litert`, NumPy and `sentencepiece` (no TensorFlow);
BERT exports need `tensorflow_text`, whose TFLite op registrar resolves the
tokenizer's custom ops (on a device, link TF Text's TFLite ops instead), and
tokenizers other than plain SentencePiece load with `kzoo.tokenizers`.
"""

import argparse
import json
import os
import sys

import numpy as np

from kzoo.export import litert_layout


def load_interpreter(model_path=None, model_content=None, custom_ops=None, num_threads=None):
    """A LiteRT `Interpreter` of a `.tflite` file (or its bytes).

    Args:
        model_path, model_content: The model, as a path or as bytes.
        custom_ops: None, or `"tensorflow_text"`: register TF Text's TFLite ops
            (`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`), which BERT
            exports tokenize with.
        num_threads: CPU threads of the interpreter (default: LiteRT's).

    Returns:
        An `ai_edge_litert.interpreter.Interpreter` (tensors not yet allocated).
    """
    from ai_edge_litert import interpreter as litert

    kwargs = dict(model_path=model_path, model_content=model_content, num_threads=num_threads)
    if custom_ops is None:
        return litert.Interpreter(**kwargs)
    if custom_ops != "tensorflow_text":
        raise ValueError(f"custom_ops: expected None or 'tensorflow_text', got {custom_ops!r}")
    import tensorflow_text

    return litert.InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS, **kwargs
    )


class LiteRTModel:
    """A LiteRT export: its manifest and its signatures, run by name.

    Args:
        directory: What `kzoo export RUN --format litert --out DIR` wrote.
        num_threads: CPU threads of the interpreter.

    Example:
    >>> LiteRTModel("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent: not a LiteRT export (no litert.json); ...
    """

    def __init__(self, directory, num_threads=None):
        self.directory = directory
        self.manifest = litert_layout.read_manifest(directory)
        self.interpreter = load_interpreter(
            model_path=os.path.join(directory, litert_layout.MODEL_FILE),
            custom_ops=self.manifest.get("custom_ops"),
            num_threads=num_threads,
        )
        self._runners = {}

    @property
    def signatures(self):
        """The signature names, as `litert.json` lists them."""
        return list(self.manifest["signatures"])

    def run(self, signature, **inputs):
        """Runs `signature` on NumPy-convertible `inputs` (strings as Python
        `str`/`bytes`); returns `{output: np.ndarray}`."""
        if signature not in self.manifest["signatures"]:
            raise ValueError(f"signature {signature!r}: the export has {self.signatures}")
        if signature not in self._runners:
            self._runners[signature] = self.interpreter.get_signature_runner(signature)
        specs = self.manifest["signatures"][signature]["inputs"]
        arrays = {}
        for name, value in inputs.items():
            if name not in specs:
                raise ValueError(f"{signature}: no input {name!r}; it takes {sorted(specs)}")
            if specs[name]["dtype"] == "string":
                arrays[name] = _utf8(value)
            else:
                arrays[name] = np.asarray(value, dtype=specs[name]["dtype"])
        return self._runners[signature](**arrays)


class LiteRTGenerator(LiteRTModel):
    """Greedy generation with a causal LM's `prefill` / `decode` model.

    Args:
        directory: A causal LM's LiteRT export.
        tokenizer: Anything with `tokenize(text)` (ids) and `detokenize(ids)`;
            default: the one shipped in the export (`load_export_tokenizer`).
        num_threads: CPU threads of the interpreter.
    """

    def __init__(self, directory, tokenizer=None, num_threads=None):
        super().__init__(directory, num_threads=num_threads)
        if "cache_length" not in self.manifest:
            raise ValueError(
                f"{directory}: a {self.manifest['model_class']} export has no decoding "
                "step; run its signatures with LiteRTModel"
            )
        self.tokenizer = tokenizer or load_export_tokenizer(directory, self.manifest)
        self.end_token_id = int(self.manifest["end_token_id"])
        self.cache_length = int(self.manifest["cache_length"])

    def generate(self, prompt, max_new_tokens=32):
        """The greedy continuation of the string `prompt` (the end token and
        everything after it left out)."""
        ids = list(self.manifest["prompt_prefix_ids"]) + list(self.tokenizer.tokenize(prompt))
        return self.tokenizer.detokenize(self.generate_ids(ids, max_new_tokens))

    def generate_ids(self, prompt_ids, max_new_tokens=32):
        """The greedy continuation (ids, without the end token) of `prompt_ids`.

        The prompt keeps its last `cache_length - max_new_tokens` ids; at most
        `cache_length - 1` tokens are generated.
        """
        if not prompt_ids:
            raise ValueError("prompt_ids: expected at least one id (the start token)")
        max_new_tokens = max(1, min(int(max_new_tokens), self.cache_length - 1))
        prompt = np.asarray(prompt_ids, np.int32)[-(self.cache_length - max_new_tokens) :]
        caches = {
            name: np.zeros(shape, np.float32)
            for name, shape in self.manifest["cache_shapes"].items()
        }
        outputs = self.run("prefill", token_ids=prompt[None, :], index=0, **caches)
        index, generated = len(prompt), []
        while True:
            token = int(np.argmax(outputs["logits"][0]))
            if token == self.end_token_id:
                break
            generated.append(token)
            if len(generated) == max_new_tokens:
                break
            caches = {name: outputs[name] for name in caches}
            outputs = self.run("decode", token_ids=[[token]], index=index, **caches)
            index += 1
        return generated


def _utf8(texts):
    """A NumPy object array of UTF-8 `bytes` of `texts` (str or bytes, any shape)."""
    texts = np.asarray(texts, dtype=object)
    encode = np.vectorize(lambda v: v.encode("utf-8") if isinstance(v, str) else v, otypes=[object])
    return encode(texts) if texts.size else texts


def load_export_tokenizer(directory, manifest=None):
    """The tokenizer a causal LM export ships (`litert.json` `tokenizer`): a
    `PlainSentencePieceTokenizer` (the `sentencepiece` library) when it is plain
    SentencePiece, else `kzoo.tokenizers.load_tokenizer` (TensorFlow) of its
    files; both with `tokenize(text) -> ids` and `detokenize(ids) -> str`."""
    manifest = manifest or litert_layout.read_manifest(directory)
    spec = manifest.get("tokenizer")
    if spec is None:
        raise ValueError(f"{directory}: the export ships no tokenizer")
    if spec["kind"] == "sentencepiece":
        return PlainSentencePieceTokenizer(os.path.join(directory, spec["model_file"]))
    return _KzooTokenizer(os.path.join(directory, spec["directory"]))


class PlainSentencePieceTokenizer:
    """A `tokenizer.model` read by the `sentencepiece` library.

    Args:
        model_file: The path of the SentencePiece model.
    """

    def __init__(self, model_file):
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_file=model_file)

    def tokenize(self, text):
        return self.processor.encode(text)

    def detokenize(self, ids):
        return self.processor.decode([int(i) for i in ids])


class _KzooTokenizer:
    """kzoo's own tokenizer of an export's files (byte-level BPE, SentencePiece
    with special tokens): exact, but it needs TensorFlow."""

    def __init__(self, directory):
        from kzoo.models.text_generation import detokenize
        from kzoo.tokenizers import load_tokenizer

        self.tokenizer = load_tokenizer(directory)
        self._detokenize = detokenize

    def tokenize(self, text):
        return [int(i) for i in np.asarray(self.tokenizer.tokenize(text))]

    def detokenize(self, ids):
        return self._detokenize(self.tokenizer, [int(i) for i in ids])


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m kzoo.export.litert_driver",
        description="run a kzoo LiteRT export: generate from a causal LM, or run a "
        "BERT export's main signature",
    )
    parser.add_argument("directory", help="what kzoo export RUN --format litert wrote")
    parser.add_argument("--prompt", help="causal LM: the prompt to continue")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--text", action="append", help="BERT: a text (repeat for a batch)")
    parser.add_argument("--pair", action="append", help="BERT pair classifier: each text's pair")
    return parser


def main(argv=None):
    """The command line (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.prompt is not None:
        print(LiteRTGenerator(args.directory).generate(args.prompt, args.max_new_tokens))
        return 0
    if not args.text:
        print("give --prompt (a causal LM) or --text (a BERT export)", file=sys.stderr)
        return 2
    model = LiteRTModel(args.directory)
    if "texts" not in model.manifest["signatures"][model.signatures[0]]["inputs"]:
        print(f"{args.directory}: a causal LM export; give --prompt", file=sys.stderr)
        return 2
    inputs = {"texts": args.text, **({"text_pairs": args.pair} if args.pair else {})}
    outputs = model.run(model.signatures[0], **inputs)
    print(json.dumps({k: _jsonable(v) for k, v in outputs.items()}, indent=1))
    return 0


def _jsonable(array):
    if array.dtype == object:  # Strings come back as bytes.
        decode = np.vectorize(lambda v: v.decode("utf-8", errors="replace"), otypes=[object])
        array = decode(array)
    return array.tolist()


if __name__ == "__main__":
    sys.exit(main())
