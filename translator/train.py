#!/usr/bin/env python3
"""Trains the date translator of issue 15 once, offline, on the CPU, and writes its weights.

The task is Bahdanau's classic demonstration: dates written in many human forms ("the 25th of
march 2017", "3/25/17", "saturday, march 25 2017") translated to ISO form ("2017-03-25"), whose
right alignment can be checked by eye (the year's digits attend to the year's words).

The model is a small pre-LN Transformer, the layout the Rust side (attn-bench translate) mirrors
exactly:
  - source characters -> embedding + learned position (max SRC_LEN), ENC_LAYERS encoder layers
    x += MHA(LN1(x)); x += FFN(LN2(x)), then a final LN;
  - target tokens (BOS, digits, '-', EOS) -> embedding + position (max TGT_LEN), DEC_LAYERS decoder
    layers x += causal MHA(LN1(x)); x += cross MHA(LN2(x), encoder); x += FFN(LN3(x)), a final LN,
    and a linear layer to the target vocabulary;
  - MHA: HEADS heads of D_MODEL / HEADS dims, softmax(q k^T / sqrt(dh)) v, biases on q, k, v, o;
    FFN: relu(x W1 + b1) W2 + b2; LayerNorm eps 1e-5; every linear layer is y = x W + b, W [in, out].

Everything is seeded and the data is generated here; it finishes in a few minutes on 2 cores.
Writes translator/weights.safetensors (f32), translator/testset.json (1,000 dates from a seed
the training never uses, for the Rust accuracy test) and translator/fixtures.json (logits of a
few inputs, to check the Rust forward pass against this one).

    python3 -m venv translator/.venv
    translator/.venv/bin/pip install -r translator/requirements.txt
    translator/.venv/bin/python translator/train.py
"""

import calendar
import datetime
import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# Vocabularies. Source: PAD, then these characters (input is lowercased first).
SRC_CHARS = " abcdefghijklmnopqrstuvwxyz0123456789,./-"
SRC_VOCAB = ["<pad>"] + list(SRC_CHARS)
# Target: PAD, BOS, EOS, digits, '-'.
TGT_VOCAB = ["<pad>", "<bos>", "<eos>"] + list("0123456789-")
PAD, BOS, EOS = 0, 1, 2
SRC_LEN = 40   # longest source (characters)
TGT_LEN = 12   # BOS + 10 characters + EOS

D_MODEL, HEADS, FFN = 64, 4, 256
ENC_LAYERS, DEC_LAYERS = 2, 2

TRAIN_SEED, EVAL_SEED, TEST_SEED = 1, 2, 9999
STEPS = int(os.environ.get("STEPS", "4000"))
BATCH = 128

MONTHS = [calendar.month_name[m].lower() for m in range(1, 13)]
MONTHS_SHORT = [calendar.month_abbr[m].lower() for m in range(1, 13)]
DAYS = [calendar.day_name[d].lower() for d in range(7)]
DAYS_SHORT = [calendar.day_abbr[d].lower() for d in range(7)]


def ordinal(n):
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def human(date, rng):
    """One of the human forms of `date`, drawn by `rng`."""
    d, m, y = date.day, date.month, date.year
    mon, mo = MONTHS[m - 1], MONTHS_SHORT[m - 1]
    wd, wds = DAYS[date.weekday()], DAYS_SHORT[date.weekday()]
    yy = f"{y % 100:02d}"
    forms = [
        f"{d} {mon} {y}",
        f"the {ordinal(d)} of {mon} {y}",
        f"{mon} {d}, {y}",
        f"{mon} {d} {y}",
        f"{wd}, {mon} {d} {y}",
        f"{wds} {d} {mo} {y}",
        f"{m}/{d}/{yy}",
        f"{m}/{d}/{y}",
        f"{d:02d}.{m:02d}.{y}",
        f"{d}.{m}.{y}",
        f"{y}-{m:02d}-{d:02d}",
        f"{d} {mo} {yy}",
        f"{mon} the {ordinal(d)}, {y}",
        f"{ordinal(d)} {mon} {y}",
        f"{mo} {d}, {y}",
        f"{wd} {ordinal(d)} {mon} {y}",
    ]
    return forms[rng.integers(len(forms))]


def random_date(rng):
    start = datetime.date(1950, 1, 1).toordinal()
    end = datetime.date(2049, 12, 31).toordinal()
    return datetime.date.fromordinal(int(rng.integers(start, end + 1)))


def pairs(seed, n):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        date = random_date(rng)
        out.append((human(date, rng), date.isoformat()))
    return out


def encode_src(text):
    ids = [SRC_VOCAB.index(c) for c in text.lower()]
    assert 0 < len(ids) <= SRC_LEN, text
    return ids


def encode_tgt(iso):
    return [BOS] + [TGT_VOCAB.index(c) for c in iso] + [EOS]


def batch_arrays(batch):
    src = np.zeros((len(batch), SRC_LEN), np.int32)
    tgt = np.zeros((len(batch), TGT_LEN), np.int32)
    for n, (h, iso) in enumerate(batch):
        s = encode_src(h)
        t = encode_tgt(iso)
        src[n, : len(s)] = s
        tgt[n, : len(t)] = t
    return src, tgt


# ---- the model ----------------------------------------------------------------------------

def init_params(key):
    params = {}
    keys = iter(jax.random.split(key, 512))

    def dense(name, n_in, n_out):
        lim = math.sqrt(6.0 / (n_in + n_out))
        params[f"{name}.w"] = jax.random.uniform(next(keys), (n_in, n_out), jnp.float32, -lim, lim)
        params[f"{name}.b"] = jnp.zeros((n_out,), jnp.float32)

    def ln(name):
        params[f"{name}.g"] = jnp.ones((D_MODEL,), jnp.float32)
        params[f"{name}.b"] = jnp.zeros((D_MODEL,), jnp.float32)

    def mha(name):
        for p in ("q", "k", "v", "o"):
            dense(f"{name}.{p}", D_MODEL, D_MODEL)

    def ffn(name):
        dense(f"{name}.1", D_MODEL, FFN)
        dense(f"{name}.2", FFN, D_MODEL)

    emb = lambda shape: 0.1 * jax.random.normal(next(keys), shape, jnp.float32)  # noqa: E731
    params["src_emb"] = emb((len(SRC_VOCAB), D_MODEL))
    params["src_pos"] = emb((SRC_LEN, D_MODEL))
    params["tgt_emb"] = emb((len(TGT_VOCAB), D_MODEL))
    params["tgt_pos"] = emb((TGT_LEN, D_MODEL))
    for layer in range(ENC_LAYERS):
        ln(f"enc.{layer}.ln1")
        mha(f"enc.{layer}.attn")
        ln(f"enc.{layer}.ln2")
        ffn(f"enc.{layer}.ffn")
    ln("enc.ln")
    for layer in range(DEC_LAYERS):
        ln(f"dec.{layer}.ln1")
        mha(f"dec.{layer}.self")
        ln(f"dec.{layer}.ln2")
        mha(f"dec.{layer}.cross")
        ln(f"dec.{layer}.ln3")
        ffn(f"dec.{layer}.ffn")
    ln("dec.ln")
    dense("out", D_MODEL, len(TGT_VOCAB))
    return params


def layer_norm(p, name, x):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + 1e-5) * p[f"{name}.g"] + p[f"{name}.b"]


def linear(p, name, x):
    return x @ p[f"{name}.w"] + p[f"{name}.b"]


def attention(p, name, xq, xkv, keep):
    """keep: [B, 1 or Lq, Lk] bool."""
    b, lq, _ = xq.shape
    lk = xkv.shape[1]
    dh = D_MODEL // HEADS

    def heads(x, n):
        return x.reshape(b, n, HEADS, dh).transpose(0, 2, 1, 3)

    q = heads(linear(p, f"{name}.q", xq), lq)
    k = heads(linear(p, f"{name}.k", xkv), lk)
    v = heads(linear(p, f"{name}.v", xkv), lk)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    s = jnp.where(keep[:, None], s, -1e9)
    o = jax.nn.softmax(s, -1) @ v
    o = o.transpose(0, 2, 1, 3).reshape(b, lq, D_MODEL)
    return linear(p, f"{name}.o", o)


def ffn(p, name, x):
    return linear(p, f"{name}.2", jax.nn.relu(linear(p, f"{name}.1", x)))


def encode(p, src):
    keep = (src != PAD)[:, None, :]
    x = p["src_emb"][src] + p["src_pos"][None, : src.shape[1]]
    for layer in range(ENC_LAYERS):
        h = layer_norm(p, f"enc.{layer}.ln1", x)
        x = x + attention(p, f"enc.{layer}.attn", h, h, keep)
        x = x + ffn(p, f"enc.{layer}.ffn", layer_norm(p, f"enc.{layer}.ln2", x))
    return layer_norm(p, "enc.ln", x)


def decode(p, enc, src, tgt_in):
    lt = tgt_in.shape[1]
    causal = jnp.tril(jnp.ones((lt, lt), bool))[None]
    cross_keep = (src != PAD)[:, None, :]
    x = p["tgt_emb"][tgt_in] + p["tgt_pos"][None, :lt]
    for layer in range(DEC_LAYERS):
        h = layer_norm(p, f"dec.{layer}.ln1", x)
        x = x + attention(p, f"dec.{layer}.self", h, h, causal)
        h = layer_norm(p, f"dec.{layer}.ln2", x)
        x = x + attention(p, f"dec.{layer}.cross", h, enc, cross_keep)
        x = x + ffn(p, f"dec.{layer}.ffn", layer_norm(p, f"dec.{layer}.ln3", x))
    return linear(p, "out", layer_norm(p, "dec.ln", x))


def loss_fn(p, src, tgt):
    logits = decode(p, encode(p, src), src, tgt[:, :-1])
    target = tgt[:, 1:]
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, target[..., None], -1)[..., 0]
    keep = (target != PAD).astype(jnp.float32)
    return (nll * keep).sum() / keep.sum()


@jax.jit
def train_step(p, m, v, t, src, tgt, lr):
    loss, g = jax.value_and_grad(loss_fn)(p, src, tgt)
    b1, b2, eps = 0.9, 0.98, 1e-9
    m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
    v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
    mh = jax.tree_util.tree_map(lambda a: a / (1 - b1 ** t), m)
    vh = jax.tree_util.tree_map(lambda a: a / (1 - b2 ** t), v)
    p = jax.tree_util.tree_map(lambda w, a, b: w - lr * a / (jnp.sqrt(b) + eps), p, mh, vh)
    return p, m, v, loss


@jax.jit
def greedy_batch(p, src):
    enc = encode(p, src)
    tgt = jnp.full((src.shape[0], TGT_LEN), PAD, jnp.int32).at[:, 0].set(BOS)
    for i in range(TGT_LEN - 1):
        logits = decode(p, enc, src, tgt[:, : i + 1])
        tgt = tgt.at[:, i + 1].set(jnp.argmax(logits[:, -1], -1).astype(jnp.int32))
    return tgt


def to_iso(ids):
    out = []
    for t in ids[1:]:
        if t == EOS:
            break
        out.append(TGT_VOCAB[t] if t > EOS else "?")
    return "".join(out)


def accuracy(p, data):
    src, _ = batch_arrays(data)
    got = np.asarray(greedy_batch(p, jnp.asarray(src)))
    return float(np.mean([to_iso(g) == iso for g, (_, iso) in zip(got, data)]))


def main():
    t0 = time.time()
    rng = np.random.default_rng(TRAIN_SEED)
    params = init_params(jax.random.PRNGKey(TRAIN_SEED))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    eval_set = pairs(EVAL_SEED, 500)
    warmup = 200
    for step in range(1, STEPS + 1):
        batch = []
        for _ in range(BATCH):
            date = random_date(rng)
            batch.append((human(date, rng), date.isoformat()))
        src, tgt = batch_arrays(batch)
        lr = 2e-3 * min(step / warmup, 1.0) * 0.5 * (1 + math.cos(math.pi * step / STEPS))
        params, m, v, loss = train_step(params, m, v, step, jnp.asarray(src), jnp.asarray(tgt), lr)
        if step % 500 == 0 or step == STEPS:
            acc = accuracy(params, eval_set)
            print(f"step {step:5d}  loss {float(loss):.4f}  eval exact match {acc:.3f}  {time.time() - t0:.0f} s", flush=True)

    weights = {k: np.asarray(val, np.float32) for k, val in params.items()}
    meta = {
        "d_model": str(D_MODEL), "heads": str(HEADS), "ffn": str(FFN),
        "enc_layers": str(ENC_LAYERS), "dec_layers": str(DEC_LAYERS),
        "src_len": str(SRC_LEN), "tgt_len": str(TGT_LEN),
        "src_vocab": SRC_CHARS, "tgt_vocab": "".join(TGT_VOCAB[3:]),
        "steps": str(STEPS), "train_seed": str(TRAIN_SEED),
    }
    save_file(weights, os.path.join(HERE, "weights.safetensors"), metadata=meta)

    # 1,000 dates from a seed the training never drew from, for the Rust test.
    test = pairs(TEST_SEED, 1000)
    test_acc = accuracy(params, test)
    with open(os.path.join(HERE, "testset.json"), "w") as f:
        json.dump({"seed": TEST_SEED, "greedy_exact_match_jax": test_acc,
                   "pairs": [[h, iso] for h, iso in test]}, f, indent=0)
    # Logits of every step of teacher-forced decoding for a few inputs (the Rust forward check).
    fixtures = []
    for h, iso in test[:4]:
        src, tgt = batch_arrays([(h, iso)])
        logits = decode(params, encode(params, jnp.asarray(src)), jnp.asarray(src), jnp.asarray(tgt[:, :-1]))
        fixtures.append({"source": h, "target": iso, "logits": np.asarray(logits[0]).tolist()})
    with open(os.path.join(HERE, "fixtures.json"), "w") as f:
        json.dump(fixtures, f)
    print(f"test exact match (greedy, JAX): {test_acc:.4f}; wrote weights.safetensors, testset.json, fixtures.json in {time.time() - t0:.0f} s")
    return 0 if test_acc >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
