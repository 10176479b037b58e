//! The attention lecture's system, working: a small encoder–decoder Transformer, trained once
//! offline (`translator/train.py`, JAX on the CPU), that translates dates written in human forms
//! ("the 25th of march 2017", "3/25/17") to ISO form ("2017-03-25"), its attention running
//! through wgpu-attention.
//!
//! - [`Model`]: the weights (`translator/weights.safetensors`, read with the `safetensors` crate)
//!   and the layers that run on the CPU: embeddings, layer norms, linear and feed-forward layers.
//! - [`attend`]: the attention, on the GPU ([`Gpu`]: encoder self-attention on the fused path,
//!   decoder self-attention over a paged KV cache on the decode path, cross-attention with P) or
//!   on the CPU with the library's f64 reference ([`Cpu`], the check).
//! - [`search`]: greedy search, beam search and sampling over any step function.
//! - [`Session`]: a batch of sentences being translated, a [`search::Step`] for those functions.

pub mod attend;
mod error;
mod forward;
pub mod model;
pub mod search;

pub use attend::{Attention, Cpu, Gpu};
pub use error::{Error, Result};
pub use forward::Encoded;
pub use model::{Config, Model, BOS, EOS};

/// The weights file committed with the repository.
pub const WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/weights.safetensors");

/// A batch being translated: the model, an attention backend and the encoded sources. Each step
/// keeps the cross-attention weights of every sequence (`[steps][batch][src_len]`).
pub struct Session<'a> {
    pub model: &'a Model,
    pub attn: &'a mut dyn Attention,
    pub enc: Encoded,
    /// Cross-attention weights of the last decoder layer (mean over heads), per step and
    /// sequence, over the source positions.
    pub cross: Vec<Vec<Vec<f32>>>,
}

impl<'a> Session<'a> {
    /// Encodes `texts` (each sentence as its own sequence).
    pub fn new(
        model: &'a Model,
        attn: &'a mut dyn Attention,
        texts: &[&str],
    ) -> Result<Session<'a>> {
        let sources = texts
            .iter()
            .map(|t| model.encode_source(t))
            .collect::<Result<Vec<_>>>()?;
        attn.reset(sources.len())?;
        let enc = model.encode(attn, &sources)?;
        Ok(Session {
            model,
            attn,
            enc,
            cross: Vec::new(),
        })
    }

    /// Tokens as text.
    pub fn text(&self, tokens: &[u32]) -> String {
        tokens.iter().map(|&t| self.model.cfg.tgt_text(t)).collect()
    }

    /// Most decoding steps a translation may take.
    pub fn max_steps(&self) -> usize {
        self.model.cfg.tgt_len
    }
}

impl search::Step for Session<'_> {
    fn step(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<Vec<f32>>> {
        let (logits, weights) = self.model.step(self.attn, &self.enc, tokens, pos)?;
        let v = self.model.cfg.tgt_vocab();
        let ls = self.enc.src_len;
        self.cross
            .push(weights.chunks(ls).map(|r| r.to_vec()).collect());
        Ok(logits.chunks(v).map(|r| r.to_vec()).collect())
    }

    fn reorder(&mut self, from: &[usize]) -> Result<()> {
        self.attn.reorder(from)?;
        // The weights recorded so far follow their sequences too.
        for step in &mut self.cross {
            let old = step.clone();
            for (b, &f) in from.iter().enumerate() {
                step[b] = old[f].clone();
            }
        }
        Ok(())
    }
}

/// Greedy translations of `texts`, batched.
pub fn translate_greedy(
    model: &Model,
    attn: &mut dyn Attention,
    texts: &[&str],
) -> Result<Vec<String>> {
    let mut s = Session::new(model, attn, texts)?;
    let steps = s.max_steps();
    let out = search::greedy(&mut s, texts.len(), BOS, EOS, steps)?;
    Ok(out.iter().map(|t| s.text(t)).collect())
}

/// The beam-search translation of one text (`width` sequences on the backend).
pub fn translate_beam(
    model: &Model,
    attn: &mut dyn Attention,
    text: &str,
    opts: search::Beam,
) -> Result<String> {
    let texts = vec![text; opts.width.max(1)];
    let mut s = Session::new(model, attn, &texts)?;
    let steps = s.max_steps();
    let (best, _) = search::beam(&mut s, opts, BOS, EOS, steps)?;
    Ok(s.text(&best))
}

/// Sampled translations of `texts`.
pub fn translate_sample(
    model: &Model,
    attn: &mut dyn Attention,
    texts: &[&str],
    opts: search::Sampling,
) -> Result<Vec<String>> {
    let mut s = Session::new(model, attn, texts)?;
    let steps = s.max_steps();
    let out = search::sample(&mut s, texts.len(), opts, BOS, EOS, steps)?;
    Ok(out.iter().map(|t| s.text(t)).collect())
}
