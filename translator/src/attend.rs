//! Where the model's attention runs: on the GPU through wgpu-attention ([`Gpu`]) or on the CPU
//! with the library's f64 reference ([`Cpu`], the check). Both take the same batched tensors.
//!
//! - Encoder self-attention: `[B, H, Ls, dh]` with each sentence's length as key lengths
//!   (the GPU runs the fused path).
//! - Decoder self-attention: one new position per sequence; its key and value are appended to a
//!   per-layer KV cache and the query attends to every position so far (the GPU runs the decode
//!   path over a [`KvCache`]).
//! - Cross-attention: one query per sequence against the encoder's keys and values, with the
//!   attention weights P returned (the heatmap).

use wgpu_attention::case::Case;
use wgpu_attention::{
    AttentionOptions, Causal, Context, DType, KvCache, KvCacheConfig, SeqId, Shape, Tensor, Variant,
};

use crate::error::Result;

/// The attention of the model's three kinds, batched over B sequences.
pub trait Attention {
    /// Starts B new sequences (empties the decoder caches).
    fn reset(&mut self, batch: usize) -> Result<()>;
    /// Encoder self-attention, non-causal: q, k, v `[B, H, ls, dh]`, key lengths `lens`.
    fn encoder(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: Shape,
        lens: &[u32],
    ) -> Result<Vec<f32>>;
    /// Decoder self-attention of one new position per sequence: q, k, v `[B, H, 1, dh]`; k and
    /// v are appended to layer `layer`'s cache first. Returns `[B, H, 1, dh]`.
    fn decoder_self(
        &mut self,
        layer: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: Shape,
    ) -> Result<Vec<f32>>;
    /// Cross-attention of decoder layer `layer`: q `[B, H, 1, dh]` against k, v `[B, H, ls, dh]`
    /// with key lengths. `source` names the encoder output k and v were made from: a call with
    /// the same layer and source has the same k and v, so a backend may keep them between steps
    /// (the GPU uploads them once per sentence batch, not once per step). Returns the output
    /// `[B, H, 1, dh]` and P `[B, H, 1, ls]`.
    #[allow(clippy::too_many_arguments)]
    fn cross(
        &mut self,
        layer: usize,
        source: u64,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: Shape,
        lens: &[u32],
    ) -> Result<(Vec<f32>, Vec<f32>)>;
    /// Beam search's step: sequence b continues from sequence `from[b]` (its cache contents).
    fn reorder(&mut self, from: &[usize]) -> Result<()>;
}

/// The GPU: wgpu-attention's fused, decode (over a paged KV cache) and staged (for P) paths.
pub struct Gpu<'a> {
    ctx: &'a Context,
    dtype: DType,
    layers: usize,
    tgt_len: usize,
    caches: Vec<(KvCache, Vec<SeqId>)>,
    /// Per decoder layer, the cross-attention keys and values on the device and the source they
    /// came from (uploaded at a source's first step, reused at its later ones).
    cross_kv: Vec<Option<(u64, Tensor, Tensor)>>,
}

impl<'a> Gpu<'a> {
    /// A GPU backend for a model of `layers` decoder layers and targets of `tgt_len` tokens, its
    /// activations uploaded in `dtype` (f32, or f16 where the model allows).
    pub fn new(ctx: &'a Context, layers: usize, tgt_len: usize, dtype: DType) -> Gpu<'a> {
        Gpu {
            ctx,
            dtype,
            layers,
            tgt_len,
            caches: Vec::new(),
            cross_kv: Vec::new(),
        }
    }

    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_f32(self.ctx, shape, data, self.dtype)?)
    }
}

impl Attention for Gpu<'_> {
    fn reset(&mut self, batch: usize) -> Result<()> {
        // The caches are made at the first decoder step, which knows the heads and dims.
        let _ = batch;
        self.caches.clear();
        self.cross_kv.clear();
        Ok(())
    }

    fn encoder(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
        lens: &[u32],
    ) -> Result<Vec<f32>> {
        let (qt, kt, vt) = (
            self.upload(q, &s.q())?,
            self.upload(k, &s.k())?,
            self.upload(v, &s.v())?,
        );
        let opts = AttentionOptions {
            variant: Variant::Fused,
            key_lengths: Some(lens.to_vec()),
            output_f32: true,
            ..Default::default()
        };
        let out = self.ctx.attention_blocking(&qt, &kt, &vt, &opts)?;
        Ok(out.out.read_blocking(self.ctx)?)
    }

    fn decoder_self(
        &mut self,
        layer: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
    ) -> Result<Vec<f32>> {
        if self.caches.is_empty() {
            for _ in 0..self.layers {
                let mut cache = KvCache::new(
                    self.ctx,
                    KvCacheConfig {
                        max_seqs: s.batch,
                        kv_heads: s.kv_heads,
                        head_dim: s.head_dim,
                        value_dim: s.value_dim,
                        dtype: self.dtype,
                        block_size: 16,
                        // Room for every sequence's positions, and for the copies that beam
                        // search's shared blocks take.
                        num_blocks: 2 * s.batch * self.tgt_len.div_ceil(16),
                    },
                )?;
                let seqs = (0..s.batch)
                    .map(|_| cache.add_sequence())
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                self.caches.push((cache, seqs));
            }
        }
        let (qt, kt, vt) = (
            self.upload(q, &s.q())?,
            self.upload(k, &s.k())?,
            self.upload(v, &s.v())?,
        );
        let (cache, seqs) = &mut self.caches[layer];
        cache.append(self.ctx, seqs, &kt, &vt)?;
        let opts = AttentionOptions {
            variant: Variant::Decode,
            output_f32: true,
            ..AttentionOptions::for_cache()
        };
        let out = cache.attention_blocking(self.ctx, &qt, seqs, &opts)?;
        Ok(out.out.read_blocking(self.ctx)?)
    }

    fn cross(
        &mut self,
        layer: usize,
        source: u64,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
        lens: &[u32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if self.cross_kv.len() <= layer {
            self.cross_kv.resize_with(layer + 1, || None);
        }
        let qt = self.upload(q, &s.q())?;
        let entry = match self.cross_kv[layer].take() {
            Some((id, kt, vt)) if id == source && kt.shape() == s.k() && vt.shape() == s.v() => {
                (id, kt, vt)
            }
            _ => (source, self.upload(k, &s.k())?, self.upload(v, &s.v())?),
        };
        let (_, kt, vt) = self.cross_kv[layer].insert(entry);
        let opts = AttentionOptions {
            key_lengths: Some(lens.to_vec()),
            return_probs: true,
            output_f32: true,
            ..Default::default()
        };
        let out = self.ctx.attention_blocking(&qt, kt, vt, &opts)?;
        let p = out
            .probs
            .as_ref()
            .expect("asked for P")
            .read_blocking(self.ctx)?;
        Ok((out.out.read_blocking(self.ctx)?, p))
    }

    fn reorder(&mut self, from: &[usize]) -> Result<()> {
        for (cache, seqs) in &mut self.caches {
            cache.reorder(seqs, from)?;
        }
        Ok(())
    }
}

/// The CPU check: the same attention with the library's f64 reference, the decoder's keys and
/// values kept in plain arrays per layer and sequence.
/// One sequence's decoder keys and values: `[H][positions·dh]` each.
type History = (Vec<Vec<f32>>, Vec<Vec<f32>>);

#[derive(Default)]
pub struct Cpu {
    /// Per layer, per sequence.
    history: Vec<Vec<History>>,
}

impl Cpu {
    fn run(case: Case, probs: bool) -> (Vec<f32>, Option<Vec<f32>>) {
        let r = wgpu_attention::reference::attention(&case, probs);
        (
            r.out.iter().map(|&x| x as f32).collect(),
            r.probs.map(|p| p.iter().map(|&x| x as f32).collect()),
        )
    }

    fn case(q: &[f32], k: &[f32], v: &[f32], s: Shape, lens: Option<&[u32]>) -> Case {
        let mut c = Case::random("translator", s, 0);
        c.q = q.to_vec();
        c.k = k.to_vec();
        c.v = v.to_vec();
        c.key_lengths = lens.map(|l| l.to_vec());
        c
    }
}

impl Attention for Cpu {
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.history.clear();
        Ok(())
    }

    fn encoder(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
        lens: &[u32],
    ) -> Result<Vec<f32>> {
        Ok(Cpu::run(Cpu::case(q, k, v, s, Some(lens)), false).0)
    }

    fn decoder_self(
        &mut self,
        layer: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
    ) -> Result<Vec<f32>> {
        let (h, dh) = (s.kv_heads, s.head_dim);
        while self.history.len() <= layer {
            self.history
                .push(vec![(vec![Vec::new(); h], vec![Vec::new(); h]); s.batch]);
        }
        let mut out = Vec::with_capacity(q.len());
        for b in 0..s.batch {
            let (hk, hv) = &mut self.history[layer][b];
            for head in 0..h {
                let r = (b * h + head) * dh;
                hk[head].extend_from_slice(&k[r..r + dh]);
                hv[head].extend_from_slice(&v[r..r + dh]);
            }
            let len = hk[0].len() / dh;
            let shape = Shape::new(1, s.q_heads, h, 1, len, dh, dh);
            let qb = &q[b * s.q_heads * dh..(b + 1) * s.q_heads * dh];
            let case = Cpu::case(qb, &hk.concat(), &hv.concat(), shape, None)
                .with_causal(Causal::BottomRight);
            out.extend(Cpu::run(case, false).0);
        }
        Ok(out)
    }

    fn cross(
        &mut self,
        _layer: usize,
        _source: u64,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: Shape,
        lens: &[u32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (o, p) = Cpu::run(Cpu::case(q, k, v, s, Some(lens)), true);
        Ok((o, p.expect("asked for P")))
    }

    fn reorder(&mut self, from: &[usize]) -> Result<()> {
        for layer in &mut self.history {
            let old = layer.clone();
            for (b, &f) in from.iter().enumerate() {
                layer[b] = old[f].clone();
            }
        }
        Ok(())
    }
}
