"""The PyTorch eager peer of nexus-lab's Candle Llama, for scripts/gpu-check.sh.

Same model as src/llama/model.rs (byte-level Llama: embedding, RMSNorm, rotate-half rotary
embedding, causal multi-head attention, SwiGLU MLP, untied head; norms 1, matrices normal(0,
0.02)), written as a PyTorch user would: eager mode, `F.scaled_dot_product_attention` with
`is_causal=True`, bf16 autocast over f32 master weights, `torch.optim.AdamW` (fused on CUDA)
with the paper's hyperparameters (betas 0.9/0.95, eps 1e-10, weight decay 0.2, clip 1.0,
lr 2e-3). Nexus: one normalized inner step x <- x - gamma g/||g|| per micro-batch (gamma 0.01),
then the displacement (start - end) as AdamW's gradient. Prints one JSON line: ms per step after
two warm-up steps, tokens/s, peak allocated memory. Data are random bytes (speed only).
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

PRESETS = {  # hidden, intermediate, layers, heads, max positions (LlamaConfig::preset)
    "micro": (8, 16, 1, 2, 16),
    "tiny": (64, 176, 2, 4, 128),
    "small": (256, 688, 4, 8, 256),
    "base": (768, 3072, 12, 12, 1024),
}
VOCAB, THETA, EPS = 256, 10000.0, 1e-5


class Llama(torch.nn.Module):
    def __init__(self, preset):
        super().__init__()
        h, i, layers, heads, _ = PRESETS[preset]
        self.h, self.heads = h, heads
        lin = lambda o, k: torch.nn.Parameter(0.02 * torch.randn(o, k))
        self.embed = torch.nn.Parameter(0.02 * torch.randn(VOCAB, h))
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            b = torch.nn.Module()
            b.ln1, b.ln2 = torch.nn.Parameter(torch.ones(h)), torch.nn.Parameter(torch.ones(h))
            b.q, b.k, b.v, b.o = lin(h, h), lin(h, h), lin(h, h), lin(h, h)
            b.gate, b.up, b.down = lin(i, h), lin(i, h), lin(h, i)
            self.blocks.append(b)
        self.norm = torch.nn.Parameter(torch.ones(h))
        self.head = lin(VOCAB, h)

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + EPS).to(x.dtype) * w.to(x.dtype)

    def forward(self, tokens):
        b, t = tokens.shape
        hd = self.h // self.heads
        j = torch.arange(hd, device=tokens.device) % (hd // 2)
        ang = torch.arange(t, device=tokens.device)[:, None] / THETA ** (2 * j / hd)[None, :]
        cos, sin = ang.cos(), ang.sin()

        def rope(x):
            half = hd // 2
            return x * cos.to(x.dtype) + torch.cat([-x[..., half:], x[..., :half]], -1) * sin.to(x.dtype)

        x = F.embedding(tokens, self.embed)
        for blk in self.blocks:
            n = self.rms(x, blk.ln1)
            split = lambda w: F.linear(n, w).view(b, t, self.heads, hd).transpose(1, 2)
            q, k, v = rope(split(blk.q)), rope(split(blk.k)), split(blk.v)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + F.linear(a.transpose(1, 2).reshape(b, t, self.h), blk.o)
            n = self.rms(x, blk.ln2)
            x = x + F.linear(F.silu(F.linear(n, blk.gate)) * F.linear(n, blk.up), blk.down)
        return F.linear(self.rms(x, self.norm), self.head)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base", choices=PRESETS)
    ap.add_argument("--variant", default="adamw", choices=["adamw", "nexus"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--inner-lr", type=float, default=0.01)
    a = ap.parse_args()
    if a.steps < 1 or a.accum < 1 or a.micro_batch < 1 or a.seq_len < 1:
        ap.error("--steps, --accum, --micro-batch and --seq-len must be >= 1")
    dev = torch.device(a.device)
    torch.manual_seed(1)
    model = Llama(a.preset).to(dev)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() == 2]
    rest = [p for p in params if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": rest, "weight_decay": 0.2}],
                            lr=2e-3, betas=(0.9, 0.95), eps=1e-10, fused=dev.type == "cuda")
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")

    def grad(tokens):
        with amp:
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        return torch.autograd.grad(loss, params)

    def step():
        batches = torch.randint(0, VOCAB, (a.accum, a.micro_batch, a.seq_len + 1), device=dev)
        if a.variant == "adamw":
            g = [torch.zeros_like(p) for p in params]
            for mb in batches:
                torch._foreach_add_(g, grad(mb))
            torch._foreach_div_(g, a.accum)
        else:
            start = [p.detach().clone() for p in params]
            for mb in batches:
                gi = grad(mb)
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in gi]))
                with torch.no_grad():
                    torch._foreach_add_(params, [x * (-a.inner_lr / norm) for x in gi])
            with torch.no_grad():
                g = torch._foreach_sub(start, [p.detach() for p in params])
                torch._foreach_copy_(params, start)
        for p, gi in zip(params, g):
            p.grad = gi
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(2):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    secs = time.perf_counter() - t0
    tokens = a.accum * a.micro_batch * a.seq_len * a.steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else float("nan")
    print(json.dumps({"ms_per_step": 1e3 * secs / a.steps, "tokens_per_s": tokens / secs,
                      "peak_memory_mib": peak, "torch": torch.__version__, "variant": a.variant}))


if __name__ == "__main__":
    main()
