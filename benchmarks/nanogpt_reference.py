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
"""

import math

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
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's `GPT` (its CPU run sets `dropout=0.0`)."""

    def __init__(
        self, vocabulary_size, num_layers, num_heads, hidden_dim, max_sequence_length, dropout=0.0
    ):
        super().__init__()
        self.wte = nn.Embedding(vocabulary_size, hidden_dim)
        self.wpe = nn.Embedding(max_sequence_length, hidden_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_dim, num_heads, dropout) for _ in range(num_layers)
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


def make_trainer(config, tokens, labels, learning_rate=1e-3, dropout=0.0):
    """`(step, parameter count)`: `step()` runs one nanoGPT training step on the
    fixed batch and returns the loss as a float (which waits for the step)."""
    torch.manual_seed(0)
    model = GPT(
        **{k: v for k, v in config.items() if k not in ("batch_size", "intermediate_dim")},
        dropout=dropout,
    )
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
