"""nanoGPT's model and training step, for side-by-side timing (PyTorch, CPU, eager).

A transcription of Andrej Karpathy's nanoGPT `model.py` (MIT licence,
github.com/karpathy/nanoGPT) as its `train.py` runs it on CPU for
`config/train_shakespeare_char.py` with the CPU overrides of its README
(`--device=cpu --compile=False --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --dropout=0.0`): learned positions,
pre-norm blocks with biased LayerNorm, fused QKV projection,
`F.scaled_dot_product_attention` with `is_causal`, exact GELU, weight tying,
nanoGPT's dropout sites (embeddings, attention probabilities, both residual
branches; rate 0 in the CPU run, `dropout` here),
AdamW (betas 0.9/0.99, weight decay on matrices only) and gradient clipping at
global norm 1.0. Imported only when `benchmarks/train_step.py --nanogpt` asks
for it (PyTorch is not a kzoo dependency: `pip install torch`).

Run as a script, by a Python that has PyTorch, it is the nanoGPT side of
`benchmarks/real_size_training.py`: one JSON request per line on stdin, one
JSON line back on stdout, so that the benchmark alternates it with its
TensorFlow contenders round by round:

    {"op": "setup", "config": {...}, "weights": W.npz, "batch": B.npz,
     "dropout": 0.1, "gelu": "tanh", "threads": 2}
        a `GPT` of `config` holding the Hugging Face GPT-2 tensors of `W.npz`
        (`load_gpt2_weights`), trained on `tokens`/`labels` of `B.npz`
        -> {"parameters": n, "initial_loss": loss in eval mode, "threads": t}
    {"op": "steps", "n": N}  N training steps -> {"seconds": [...], "losses": [...]}
    {"op": "matmul", "size": 2048, "repeats": 5}
        float32 `torch.mm` of two size x size matrices -> {"best_seconds": s}
    {"op": "quit"}
"""

import json
import math
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.resid_dropout = nn.Dropout(dropout)
        self.heads, self.dropout = heads, dropout

    def forward(self, x):
        batch, length, width = x.size()
        q, k, v = self.c_attn(x).split(width, dim=2)
        q, k, v = (
            t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for t in (q, k, v)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = self.c_proj(y.transpose(1, 2).contiguous().view(batch, length, width))
        return self.resid_dropout(y)


class Block(nn.Module):
    def __init__(self, width, heads, dropout, gelu="none"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width),
            nn.GELU(approximate=gelu),
            nn.Linear(4 * width, width),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's `GPT` (its CPU run sets `dropout=0.0`). `gelu="tanh"` computes
    GPT-2's (and KerasHub's) tanh approximation instead of nanoGPT's exact GELU,
    at the same cost, so that the same weights give the same outputs."""

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        max_sequence_length,
        dropout=0.0,
        gelu="none",
    ):
        super().__init__()
        self.wte = nn.Embedding(vocabulary_size, hidden_dim)
        self.wpe = nn.Embedding(max_sequence_length, hidden_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_dim, num_heads, dropout, gelu) for _ in range(num_layers)
        )
        self.ln_f = nn.LayerNorm(hidden_dim)
        self.lm_head = nn.Linear(hidden_dim, vocabulary_size, bias=False)
        self.lm_head.weight = self.wte.weight  # Weight tying.
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * num_layers))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens, targets):
        positions = torch.arange(tokens.size(1), device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def load_gpt2_weights(model, tensors):
    """Copies Hugging Face GPT-2 tensors (`GPT2LMHeadModel` names, `Conv1D`
    kernels laid out `(in, out)`, e.g. `kzoo.models.gpt.hf_checkpoint.hf_tensors_from`)
    into a `GPT`, as nanoGPT's `GPT.from_pretrained` does."""
    prefix = "transformer." if "transformer.wte.weight" in tensors else ""
    pairs = [("wte.weight", model.wte.weight), ("wpe.weight", model.wpe.weight)]
    for i, block in enumerate(model.blocks):
        modules = {
            "ln_1": block.ln_1,
            "attn.c_attn": block.attn.c_attn,
            "attn.c_proj": block.attn.c_proj,
            "ln_2": block.ln_2,
            "mlp.c_fc": block.mlp[0],
            "mlp.c_proj": block.mlp[2],
        }
        for name, module in modules.items():
            pairs += [(f"h.{i}.{name}.weight", module.weight), (f"h.{i}.{name}.bias", module.bias)]
    pairs += [("ln_f.weight", model.ln_f.weight), ("ln_f.bias", model.ln_f.bias)]
    with torch.no_grad():
        for name, parameter in pairs:
            value = torch.as_tensor(tensors[prefix + name])
            if ".c_" in name and name.endswith(".weight"):
                value = value.t()  # Conv1D (in, out) -> Linear (out, in).
            if value.shape != parameter.shape:
                raise ValueError(f"{name}: expected {tuple(parameter.shape)}, got {value.shape}")
            parameter.copy_(value)


def build_model(config, dropout=0.0, gelu="none"):
    """nanoGPT's `GPT` with `config`'s sizes (`benchmarks/train_step.py`'s `GPT`
    keys; `intermediate_dim` must be 4x `hidden_dim`, as in nanoGPT), initialized
    as nanoGPT does with seed 0."""
    if config.get("intermediate_dim", 4 * config["hidden_dim"]) != 4 * config["hidden_dim"]:
        raise ValueError(f"intermediate_dim: nanoGPT's MLP is 4x hidden_dim, got {config}")
    torch.manual_seed(0)
    return GPT(
        **{k: v for k, v in config.items() if k not in ("batch_size", "intermediate_dim")},
        dropout=dropout,
        gelu=gelu,
    )


def make_trainer(config, tokens, labels, learning_rate=1e-3, dropout=0.0, model=None):
    """`(step, parameter count)`: `step()` runs one nanoGPT training step on the
    fixed batch and returns the loss as a float (which waits for the step).
    `model`: a `GPT` to train (default: `build_model(config, dropout)`)."""
    if model is None:
        model = build_model(config, dropout)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.99),
    )
    tokens, labels = torch.as_tensor(tokens).long(), torch.as_tensor(labels).long()

    def step():
        loss = model(tokens, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def _matmul_seconds(size, repeats):
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    """The request loop of the module docstring."""
    import numpy as np

    step = None
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            break
        if op == "setup":
            torch.set_num_threads(request["threads"])
            model = build_model(request["config"], request["dropout"], request["gelu"])
            with np.load(request["weights"]) as weights, np.load(request["batch"]) as batch:
                load_gpt2_weights(model, weights)
                tokens, labels = (torch.as_tensor(batch[k]).long() for k in ("tokens", "labels"))
            model.eval()
            with torch.no_grad():  # The loss of the given weights, without dropout.
                initial_loss = model(tokens, labels).item()
            model.train()
            step, parameters = make_trainer(
                request["config"], tokens, labels, dropout=request["dropout"], model=model
            )
            answer = {
                "parameters": parameters,
                "initial_loss": initial_loss,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        elif op == "steps":
            answer = {"seconds": [], "losses": []}
            for _ in range(request["n"]):
                start = time.perf_counter()
                answer["losses"].append(step())
                answer["seconds"].append(time.perf_counter() - start)
        elif op == "matmul":
            answer = {"best_seconds": _matmul_seconds(request["size"], request["repeats"])}
        else:
            raise ValueError(f"op: expected setup, steps, matmul or quit, got {op!r}")
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
