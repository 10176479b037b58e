//! The model's forward pass, batched over B sentences, its attention on an [`Attention`] backend
//! (the GPU, or the CPU reference as the check) and every other layer on the CPU.
//!
//! `encode` runs the encoder once; a [`Decoder`] then runs one target position per call for every
//! sequence at once (incremental decoding: each decoder self-attention layer keeps its keys and
//! values in the backend's cache), returning the logits of the next token and the
//! cross-attention weights.

use wgpu_attention::Shape;

use crate::attend::Attention;
use crate::error::{Error, Result};
use crate::model::Model;

/// `[B, L, d]` → `[B, H, L, dh]`.
fn split_heads(x: &[f32], b: usize, l: usize, h: usize, dh: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for bi in 0..b {
        for i in 0..l {
            for hi in 0..h {
                let src = ((bi * l + i) * h + hi) * dh;
                let dst = ((bi * h + hi) * l + i) * dh;
                y[dst..dst + dh].copy_from_slice(&x[src..src + dh]);
            }
        }
    }
    y
}

/// `[B, H, L, dh]` → `[B, L, d]`.
fn merge_heads(x: &[f32], b: usize, l: usize, h: usize, dh: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..l {
                let src = ((bi * h + hi) * l + i) * dh;
                let dst = ((bi * l + i) * h + hi) * dh;
                y[dst..dst + dh].copy_from_slice(&x[src..src + dh]);
            }
        }
    }
    y
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// The encoder's output for a batch, and each decoder layer's cross-attention keys and values.
pub struct Encoded {
    pub batch: usize,
    /// Longest source of the batch.
    pub src_len: usize,
    /// Each source's length.
    pub lens: Vec<u32>,
    /// Per decoder layer: keys and values `[B, H, src_len, dh]`.
    cross_kv: Vec<(Vec<f32>, Vec<f32>)>,
    /// Unique in the process: tells an attention backend that keeps cross-attention keys and
    /// values between steps which encoder output they belong to.
    id: u64,
}

/// The ids of [`Encoded`].
static NEXT_ENCODED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Model {
    /// Runs the encoder over `sources` (token ids, each 1 to src_len long).
    pub fn encode(&self, attn: &mut dyn Attention, sources: &[Vec<u32>]) -> Result<Encoded> {
        let c = &self.cfg;
        let (d, h, dh) = (c.d_model, c.heads, c.head_dim());
        let b = sources.len();
        if b == 0 {
            return Err(Error::Input("no sentences".into()));
        }
        let ls = sources.iter().map(|s| s.len()).max().unwrap_or(1);
        let lens: Vec<u32> = sources.iter().map(|s| s.len() as u32).collect();
        let (emb, pos) = (self.w("src_emb"), self.w("src_pos"));
        let mut x = vec![0f32; b * ls * d];
        for (bi, s) in sources.iter().enumerate() {
            for (i, &t) in s.iter().enumerate() {
                let row = &mut x[(bi * ls + i) * d..(bi * ls + i + 1) * d];
                for e in 0..d {
                    row[e] = emb[t as usize * d + e] + pos[i * d + e];
                }
            }
        }
        let shape = Shape::new(b, h, h, ls, ls, dh, dh);
        for l in 0..c.enc_layers {
            let hn = self.layer_norm(&format!("enc.{l}.ln1"), &x);
            let qkv: Vec<Vec<f32>> = ["q", "k", "v"]
                .iter()
                .map(|p| {
                    split_heads(
                        &self.linear(&format!("enc.{l}.attn.{p}"), &hn),
                        b,
                        ls,
                        h,
                        dh,
                    )
                })
                .collect();
            let o = attn.encoder(&qkv[0], &qkv[1], &qkv[2], shape, &lens)?;
            add(
                &mut x,
                &self.linear(&format!("enc.{l}.attn.o"), &merge_heads(&o, b, ls, h, dh)),
            );
            let f = self.ffn(
                &format!("enc.{l}.ffn"),
                &self.layer_norm(&format!("enc.{l}.ln2"), &x),
            );
            add(&mut x, &f);
        }
        let enc = self.layer_norm("enc.ln", &x);
        let cross_kv = (0..c.dec_layers)
            .map(|l| {
                let k = split_heads(
                    &self.linear(&format!("dec.{l}.cross.k"), &enc),
                    b,
                    ls,
                    h,
                    dh,
                );
                let v = split_heads(
                    &self.linear(&format!("dec.{l}.cross.v"), &enc),
                    b,
                    ls,
                    h,
                    dh,
                );
                (k, v)
            })
            .collect();
        Ok(Encoded {
            batch: b,
            src_len: ls,
            lens,
            cross_kv,
            id: NEXT_ENCODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// One decoder step at target position `pos` for every sequence: `tokens[b]` is sequence
    /// b's token at `pos`. Returns the logits of the next token `[B, vocab]` and the last decoder
    /// layer's cross-attention weights averaged over heads `[B, src_len]`.
    pub fn step(
        &self,
        attn: &mut dyn Attention,
        enc: &Encoded,
        tokens: &[u32],
        pos: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let c = &self.cfg;
        let (d, h, dh) = (c.d_model, c.heads, c.head_dim());
        let b = tokens.len();
        if b != enc.batch {
            return Err(Error::Input(format!(
                "{b} tokens for a batch of {}",
                enc.batch
            )));
        }
        if pos >= c.tgt_len {
            return Err(Error::Input(format!(
                "target position {pos} is past the model's {} positions",
                c.tgt_len
            )));
        }
        let (emb, pe) = (self.w("tgt_emb"), self.w("tgt_pos"));
        let mut x = Vec::with_capacity(b * d);
        for &t in tokens {
            x.extend((0..d).map(|e| emb[t as usize * d + e] + pe[pos * d + e]));
        }
        let one = Shape::new(b, h, h, 1, pos + 1, dh, dh);
        let cross = Shape::new(b, h, h, 1, enc.src_len, dh, dh);
        let mut weights = vec![0f32; b * enc.src_len];
        for l in 0..c.dec_layers {
            let hn = self.layer_norm(&format!("dec.{l}.ln1"), &x);
            // One position per sequence: [B, 1, d] is already [B, H, 1, dh].
            let q = self.linear(&format!("dec.{l}.self.q"), &hn);
            let k = self.linear(&format!("dec.{l}.self.k"), &hn);
            let v = self.linear(&format!("dec.{l}.self.v"), &hn);
            let o = attn.decoder_self(l, &q, &k, &v, Shape { kv_len: 1, ..one })?;
            add(&mut x, &self.linear(&format!("dec.{l}.self.o"), &o));
            let hn = self.layer_norm(&format!("dec.{l}.ln2"), &x);
            let q = self.linear(&format!("dec.{l}.cross.q"), &hn);
            let (ck, cv) = &enc.cross_kv[l];
            let (o, p) = attn.cross(l, enc.id, &q, ck, cv, cross, &enc.lens)?;
            add(&mut x, &self.linear(&format!("dec.{l}.cross.o"), &o));
            if l + 1 == c.dec_layers {
                for bi in 0..b {
                    for hi in 0..h {
                        let row = &p[(bi * h + hi) * enc.src_len..(bi * h + hi + 1) * enc.src_len];
                        for (w, &pv) in weights[bi * enc.src_len..(bi + 1) * enc.src_len]
                            .iter_mut()
                            .zip(row)
                        {
                            *w += pv / h as f32;
                        }
                    }
                }
            }
            let f = self.ffn(
                &format!("dec.{l}.ffn"),
                &self.layer_norm(&format!("dec.{l}.ln3"), &x),
            );
            add(&mut x, &f);
        }
        let logits = self.linear("out", &self.layer_norm("dec.ln", &x));
        Ok((logits, weights))
    }
}
