"""The JAX peer of nexus-lab's Candle Llama, for `llama_bench --peer jax`.

Same model (byte-level Llama: token embedding, RMSNorm, rotate-half rotary embedding, causal
multi-head attention, SwiGLU MLP, untied head; init: norms 1, matrices normal(0, 0.02)), same
batch geometry (accum micro-batches of micro_batch x seq_len tokens), f32, and the same two
optimizers:
  adamw: the mean gradient of the micro-batches, clipped to global norm `clip`, into AdamW;
  nexus: K = accum normalized inner steps x <- x - inner_lr g / ||g||, one per micro-batch in
         order, then the displacement (start - end), clipped, into the same AdamW.
The whole outer step is one `jax.jit` function. Prints one JSON line: ms per step (after two
warm-up steps) and, with --check FILE, the loss and gradient of a batch and parameters written
by Candle (safetensors), so the two implementations can be compared number for number.

Run through `scripts/setup-peers.sh` (pinned versions in a local virtual environment).
"""

import argparse
import json
import struct
import time

import jax
import jax.numpy as jnp
import numpy as np

PRESETS = {  # hidden, intermediate, layers, heads, max positions (LlamaConfig::preset)
    "micro": (8, 16, 1, 2, 16),
    "tiny": (64, 176, 2, 4, 128),
    "small": (256, 688, 4, 8, 256),
    "base": (768, 3072, 12, 12, 1024),
}
VOCAB, ROPE_THETA, EPS = 256, 10000.0, 1e-5
BETA1, BETA2, ADAM_EPS = 0.9, 0.95, 1e-10


def shapes(preset):
    h, i, layers, _, _ = PRESETS[preset]
    out = [("model.embed_tokens.weight", (VOCAB, h))]
    for l in range(layers):
        p = f"model.layers.{l}"
        out.append((f"{p}.input_layernorm.weight", (h,)))
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            out.append((f"{p}.self_attn.{proj}.weight", (h, h)))
        out.append((f"{p}.post_attention_layernorm.weight", (h,)))
        out.append((f"{p}.mlp.gate_proj.weight", (i, h)))
        out.append((f"{p}.mlp.up_proj.weight", (i, h)))
        out.append((f"{p}.mlp.down_proj.weight", (h, i)))
    out.append(("model.norm.weight", (h,)))
    out.append(("lm_head.weight", (VOCAB, h)))
    return out


def init(preset, key):
    params = {}
    for name, shape in shapes(preset):
        key, sub = jax.random.split(key)
        params[name] = (jnp.ones(shape, jnp.float32) if len(shape) == 1
                        else 0.02 * jax.random.normal(sub, shape, jnp.float32))
    return params


def rms_norm(x, w):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rotary(preset, t):
    h, _, _, heads, _ = PRESETS[preset]
    hd = h // heads
    j = np.arange(hd) % (hd // 2)
    freq = 1.0 / ROPE_THETA ** (2 * j / hd)
    ang = np.arange(t)[:, None] * freq[None, :]
    return jnp.asarray(np.cos(ang), jnp.float32), jnp.asarray(np.sin(ang), jnp.float32)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def loss_fn(params, tokens, preset):
    h, _, layers, heads, _ = PRESETS[preset]
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    b, t = inputs.shape
    hd = h // heads
    cos, sin = rotary(preset, t)
    mask = jnp.tril(jnp.ones((t, t), bool))
    x = params["model.embed_tokens.weight"][inputs]
    for l in range(layers):
        p = f"model.layers.{l}"
        n = rms_norm(x, params[f"{p}.input_layernorm.weight"])
        split = lambda name: (n @ params[f"{p}.self_attn.{name}.weight"].T).reshape(b, t, heads, hd).transpose(0, 2, 1, 3)
        q, k, v = rope(split("q_proj"), cos, sin), rope(split("k_proj"), cos, sin), split("v_proj")
        scores = jnp.where(mask, q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd), -jnp.inf)
        out = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
        x = x + out @ params[f"{p}.self_attn.o_proj.weight"].T
        n = rms_norm(x, params[f"{p}.post_attention_layernorm.weight"])
        gate = jax.nn.silu(n @ params[f"{p}.mlp.gate_proj.weight"].T)
        x = x + (gate * (n @ params[f"{p}.mlp.up_proj.weight"].T)) @ params[f"{p}.mlp.down_proj.weight"].T
    logits = rms_norm(x, params["model.norm.weight"]) @ params["lm_head.weight"].T
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(tree)))


def make_step(preset, variant, loop, lr, inner_lr, clip, weight_decay):
    grad_fn = jax.value_and_grad(loss_fn)

    def step(params, m, v, t, batches):
        k = batches.shape[0]
        if variant == "adamw":
            if loop == "scan":
                def accumulate(acc, tokens):
                    _, g = grad_fn(params, tokens, preset)
                    return jax.tree_util.tree_map(jnp.add, acc, g), None
                zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
                grads, _ = jax.lax.scan(accumulate, zeros, batches)
            else:
                grads = grad_fn(params, batches[0], preset)[1]
                for i in range(1, k):
                    grads = jax.tree_util.tree_map(jnp.add, grads, grad_fn(params, batches[i], preset)[1])
            grads = jax.tree_util.tree_map(lambda g: g / k, grads)
        else:  # nexus
            def inner(x, tokens):
                _, g = grad_fn(x, tokens, preset)
                n = global_norm(g)
                scale = jnp.where(n > 0, inner_lr / n, 0.0)
                return jax.tree_util.tree_map(lambda a, b: a - scale * b, x, g), None
            if loop == "scan":
                end, _ = jax.lax.scan(inner, params, batches)
            else:
                end = params
                for i in range(k):
                    end, _ = inner(end, batches[i])
            grads = jax.tree_util.tree_map(jnp.subtract, params, end)
        n = global_norm(grads)
        grads = jax.tree_util.tree_map(lambda g: g * jnp.where(n > clip, clip / n, 1.0), grads)
        t = t + 1
        m = jax.tree_util.tree_map(lambda a, g: BETA1 * a + (1 - BETA1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda a, g: BETA2 * a + (1 - BETA2) * g * g, v, grads)
        bc1, bc2 = 1 - BETA1 ** t, 1 - BETA2 ** t
        params = jax.tree_util.tree_map(
            lambda p, a, b: p * (1 - lr * weight_decay) - lr * (a / bc1) / (jnp.sqrt(b / bc2) + ADAM_EPS),
            params, m, v)
        return params, m, v, t

    return jax.jit(step)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F64": np.float64, "U32": np.uint32, "I64": np.int64}[meta["dtype"]]
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype).reshape(meta["shape"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", choices=PRESETS)
    ap.add_argument("--variant", default="adamw", choices=["adamw", "nexus"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--inner-lr", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loop", default="auto", choices=["auto", "scan", "unrolled"],
                    help="the micro-batch loop under jit; auto: lax.scan for AdamW (faster here than "
                         "unrolled, 9.5 against 11.2 ms at tiny), unrolled for Nexus (as fast or faster)")
    ap.add_argument("--check", help="safetensors with the parameters and a `tokens` batch from Candle")
    a = ap.parse_args()
    if a.check:
        tensors = read_safetensors(a.check)
        tokens = jnp.asarray(tensors.pop("tokens").astype(np.int32))
        params = {k: jnp.asarray(v.astype(np.float32)) for k, v in tensors.items()}
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, a.preset)
        print(json.dumps({"loss": float(loss), "grads": {k: np.asarray(g).ravel().tolist() for k, g in grads.items()}}))
        return
    if a.steps < 1:
        ap.error("--steps must be >= 1")
    key = jax.random.PRNGKey(a.seed)
    params = init(a.preset, key)
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    t = jnp.zeros((), jnp.float32)
    loop = a.loop if a.loop != "auto" else ("scan" if a.variant == "adamw" else "unrolled")
    step = make_step(a.preset, a.variant, loop, a.lr, a.inner_lr, a.clip, a.weight_decay)
    rng = np.random.default_rng(a.seed)
    batch = lambda: jnp.asarray(rng.integers(0, VOCAB, (a.accum, a.micro_batch, a.seq_len + 1)), jnp.int32)
    data = [batch() for _ in range(a.steps + 2)]
    for i in range(2):  # warm-up: compilation and caches
        params, m, v, t = step(params, m, v, t, data[i])
    jax.block_until_ready(params)
    start = time.perf_counter()
    for i in range(a.steps):
        params, m, v, t = step(params, m, v, t, data[2 + i])
    jax.block_until_ready(params)
    secs = time.perf_counter() - start
    tokens = a.accum * a.micro_batch * a.seq_len * a.steps
    print(json.dumps({"ms_per_step": 1e3 * secs / a.steps, "tokens_per_s": tokens / secs,
                      "jax": jax.__version__, "loop": loop}))


if __name__ == "__main__":
    main()
