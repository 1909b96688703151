"""The Hugging Face side of `real_size_serving.py`, run by the reference
environment's Python (PyTorch, `transformers`), never imported by kzoo.

    /work/refenv/bin/python benchmarks/transformers_worker.py

Reads one JSON request per line on stdin and answers one JSON line on stdout, so
the benchmark can alternate it with its TensorFlow contenders round by round:

    {"op": "write_gpt2", "directory": D, "config": {...}, "seed": 0, "head_scale": 8.0}
        a random `GPT2LMHeadModel` saved with `save_pretrained` (safetensors);
        `head_scale` multiplies the final layer norm, which spreads the logits so
        that greedy argmaxes are not near-ties on random weights
    {"op": "load", "directory": D}  the model of `directory` (float32, eval mode)
    {"op": "generate", "ids": [[...]], "new": N}
        greedy `generate` of exactly N tokens (KV cache);
        -> {"seconds": s, "ids": [[new ids]]}
    {"op": "quit"}

Timings are `time.perf_counter` around the call, inside this process (the
pipe's JSON is not timed). PyTorch runs on 2 threads, as TensorFlow does.
"""

import json
import sys
import time

import torch


def write_gpt2(directory, config, seed, head_scale):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    end = config["vocab_size"] - 1  # <|endoftext|>, last as in GPT-2's vocabulary
    model = GPT2LMHeadModel(GPT2Config(**config, bos_token_id=end, eos_token_id=end))
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(head_scale)
    model.save_pretrained(directory)
    return {"parameters": sum(p.numel() for p in model.parameters())}


class Worker:
    def __init__(self):
        self.model = None

    def load(self, directory):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        return {"class": type(self.model).__name__}

    def generate(self, ids, new):
        inputs = torch.tensor(ids, dtype=torch.long)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                do_sample=False,
                use_cache=True,
                max_new_tokens=new,
                min_new_tokens=new,
                pad_token_id=0,
            )
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "ids": out[:, inputs.shape[1] :].tolist()}


def main():
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(2)
    worker = Worker()
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        if op == "write_gpt2":
            answer = write_gpt2(**request)
        else:
            answer = getattr(worker, op)(**request)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
