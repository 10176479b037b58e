//! The trained model: its configuration and weights (read from `weights.safetensors` with the
//! `safetensors` crate), the vocabularies, and the layers that run on the CPU (embeddings, layer
//! norms, linear layers, the feed-forward blocks). Attention goes through [`crate::Attention`].

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Sizes and vocabularies, from the weights file's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub d_model: usize,
    pub heads: usize,
    pub ffn: usize,
    pub enc_layers: usize,
    pub dec_layers: usize,
    /// Longest source, in characters.
    pub src_len: usize,
    /// Longest target, in tokens (BOS and EOS included).
    pub tgt_len: usize,
    /// Source characters; token n + 1 is character n (0 is padding).
    pub src_chars: Vec<char>,
    /// Target characters; token n + 3 is character n (0 pad, 1 BOS, 2 EOS).
    pub tgt_chars: Vec<char>,
}

/// Target token of the start of a translation.
pub const BOS: u32 = 1;
/// Target token that ends a translation.
pub const EOS: u32 = 2;

impl Config {
    /// Dims of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
    /// Size of the target vocabulary.
    pub fn tgt_vocab(&self) -> usize {
        self.tgt_chars.len() + 3
    }
    /// A target token as text ("" for BOS, EOS and padding).
    pub fn tgt_text(&self, t: u32) -> String {
        if t >= 3 {
            self.tgt_chars
                .get(t as usize - 3)
                .map(|c| c.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Weights by name, each with its shape.
pub struct Model {
    pub cfg: Config,
    w: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("cfg", &self.cfg).finish()
    }
}

impl Model {
    /// Reads a weights file.
    pub fn load(path: &str) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::Weights {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Model::from_bytes(&bytes).map_err(|e| match e {
            Error::Weights { reason, .. } => Error::Weights {
                path: path.into(),
                reason,
            },
            e => e,
        })
    }

    /// Reads the safetensors bytes of a weights file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let bad = |reason: String| Error::Weights {
            path: String::new(),
            reason,
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let m = meta
            .metadata()
            .clone()
            .ok_or_else(|| bad("no metadata (sizes and vocabularies)".into()))?;
        let num = |k: &str| -> Result<usize> {
            m.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(format!("metadata {k:?} missing or not a number")))
        };
        let chars = |k: &str| -> Result<Vec<char>> {
            m.get(k)
                .map(|v| v.chars().collect())
                .ok_or_else(|| bad(format!("metadata {k:?} missing")))
        };
        let cfg = Config {
            d_model: num("d_model")?,
            heads: num("heads")?,
            ffn: num("ffn")?,
            enc_layers: num("enc_layers")?,
            dec_layers: num("dec_layers")?,
            src_len: num("src_len")?,
            tgt_len: num("tgt_len")?,
            src_chars: chars("src_vocab")?,
            tgt_chars: chars("tgt_vocab")?,
        };
        if cfg.heads == 0 || cfg.d_model % cfg.heads != 0 {
            return Err(bad(format!(
                "d_model {} is not a multiple of heads {}",
                cfg.d_model, cfg.heads
            )));
        }
        let mut w = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, expected F32", view.dtype())));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            w.insert(name, (view.shape().to_vec(), data));
        }
        let model = Model { cfg, w };
        model.check()?;
        Ok(model)
    }

    /// Every weight the forward pass reads, with its shape.
    fn check(&self) -> Result<()> {
        let c = &self.cfg;
        let (d, f) = (c.d_model, c.ffn);
        let mut want: Vec<(String, Vec<usize>)> = vec![
            ("src_emb".into(), vec![c.src_chars.len() + 1, d]),
            ("src_pos".into(), vec![c.src_len, d]),
            ("tgt_emb".into(), vec![c.tgt_vocab(), d]),
            ("tgt_pos".into(), vec![c.tgt_len, d]),
            ("out.w".into(), vec![d, c.tgt_vocab()]),
            ("out.b".into(), vec![c.tgt_vocab()]),
        ];
        let ln = |w: &mut Vec<(String, Vec<usize>)>, n: String| {
            w.push((format!("{n}.g"), vec![d]));
            w.push((format!("{n}.b"), vec![d]));
        };
        let lin = |w: &mut Vec<(String, Vec<usize>)>, n: String, i: usize, o: usize| {
            w.push((format!("{n}.w"), vec![i, o]));
            w.push((format!("{n}.b"), vec![o]));
        };
        for l in 0..c.enc_layers {
            ln(&mut want, format!("enc.{l}.ln1"));
            ln(&mut want, format!("enc.{l}.ln2"));
            for p in ["q", "k", "v", "o"] {
                lin(&mut want, format!("enc.{l}.attn.{p}"), d, d);
            }
            lin(&mut want, format!("enc.{l}.ffn.1"), d, f);
            lin(&mut want, format!("enc.{l}.ffn.2"), f, d);
        }
        ln(&mut want, "enc.ln".into());
        for l in 0..c.dec_layers {
            for n in ["ln1", "ln2", "ln3"] {
                ln(&mut want, format!("dec.{l}.{n}"));
            }
            for a in ["self", "cross"] {
                for p in ["q", "k", "v", "o"] {
                    lin(&mut want, format!("dec.{l}.{a}.{p}"), d, d);
                }
            }
            lin(&mut want, format!("dec.{l}.ffn.1"), d, f);
            lin(&mut want, format!("dec.{l}.ffn.2"), f, d);
        }
        ln(&mut want, "dec.ln".into());
        for (name, shape) in want {
            match self.w.get(&name) {
                None => {
                    return Err(Error::Weights {
                        path: String::new(),
                        reason: format!("weight {name} missing"),
                    })
                }
                Some((s, data)) if *s != shape || data.len() != shape.iter().product::<usize>() => {
                    return Err(Error::Weights {
                        path: String::new(),
                        reason: format!("weight {name} has shape {s:?}, expected {shape:?}"),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// A weight's values (checked present at load).
    pub fn w(&self, name: &str) -> &[f32] {
        &self.w[name].1
    }

    /// The source text as tokens: lowercased, every character in the vocabulary, 1 to src_len
    /// long.
    pub fn encode_source(&self, text: &str) -> Result<Vec<u32>> {
        let lower = text.to_lowercase();
        let n = lower.chars().count();
        if n == 0 {
            return Err(Error::Input("the input is empty".into()));
        }
        if n > self.cfg.src_len {
            return Err(Error::Input(format!(
                "the input has {n} characters; the model takes at most {}",
                self.cfg.src_len
            )));
        }
        lower
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                self.cfg
                    .src_chars
                    .iter()
                    .position(|&c| c == ch)
                    .map(|p| p as u32 + 1)
                    .ok_or_else(|| {
                        Error::Input(format!(
                            "character {ch:?} at position {i} is not in the vocabulary ({:?})",
                            self.cfg.src_chars.iter().collect::<String>()
                        ))
                    })
            })
            .collect()
    }

    /// y = x W + b for rows of x (`[rows, in]` → `[rows, out]`).
    pub fn linear(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let (shape, w) = &self.w[&format!("{name}.w")];
        let b = self.w(&format!("{name}.b"));
        let (n_in, n_out) = (shape[0], shape[1]);
        let mut y = Vec::with_capacity(x.len() / n_in * n_out);
        for row in x.chunks(n_in) {
            let mut acc = b.to_vec();
            for (i, &xi) in row.iter().enumerate() {
                if xi != 0.0 {
                    for (a, &wv) in acc.iter_mut().zip(&w[i * n_out..(i + 1) * n_out]) {
                        *a += xi * wv;
                    }
                }
            }
            y.extend(acc);
        }
        y
    }

    /// LayerNorm over the last dim (eps 1e-5).
    pub fn layer_norm(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let (g, b) = (self.w(&format!("{name}.g")), self.w(&format!("{name}.b")));
        let d = g.len();
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(d) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + 1e-5).sqrt();
            y.extend(
                row.iter()
                    .zip(g.iter().zip(b))
                    .map(|(v, (g, b))| (v - mean) * inv * g + b),
            );
        }
        y
    }

    /// relu(x W1 + b1) W2 + b2.
    pub fn ffn(&self, name: &str, x: &[f32]) -> Vec<f32> {
        let mut h = self.linear(&format!("{name}.1"), x);
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        self.linear(&format!("{name}.2"), &h)
    }
}
