//! Attention problems on the host: the golden-file format (`tests/golden/*.json`), loading with
//! contract checks, seeded random generation, and upload to the GPU.

use crate::rng::SeededRng;

use crate::context::Context;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::{AttentionOptions, Causal, Mask, MaskKind};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A mask as stored in a case file: `shape` is `[batch|1, q_heads|1, q_len|1, kv_len|1]`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CaseMask {
    /// Bool or additive.
    pub kind: MaskKind,
    /// `[batch|1, q_heads|1, q_len|1, kv_len|1]`.
    pub shape: Vec<usize>,
    /// The values, row-major in `shape`.
    pub data: Vec<f32>,
}

/// The score function of a case file (`"score"`; missing means the scaled dot product).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "lowercase"))]
pub enum CaseScore {
    /// The scaled dot product `scale · q·k` (the default).
    Dot,
    /// Bahdanau's additive score `scale · Σ_a v_a[a] tanh((W_q q)[a] + (W_k k)[a] + bias[a])`,
    /// scale 1 unless given.
    Additive {
        /// A, the attention dim.
        attn_dim: usize,
        /// `[A, head_dim]`, row-major.
        w_q: Vec<f32>,
        /// `[A, head_dim]`, row-major.
        w_k: Vec<f32>,
        /// `[A]`, or none.
        #[cfg_attr(feature = "serde", serde(default))]
        bias: Option<Vec<f32>>,
        /// `[A]`.
        v_a: Vec<f32>,
    },
}

/// One attention problem, with its expected results when the file carries them.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Case {
    /// A name for reports.
    pub name: String,
    /// The dtype of Q, K and V (a missing `dtype` field in a file means f32). For f16 and bf16
    /// every value of `q`, `k` and `v` is exactly representable in it; masks stay f32.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "DType::is_f32")
    )]
    pub dtype: DType,
    /// Batch size.
    pub batch: usize,
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads (a divisor of `q_heads`).
    pub kv_heads: usize,
    /// Query rows per head.
    pub q_len: usize,
    /// Keys per head.
    pub kv_len: usize,
    /// Dimension of queries and keys.
    pub head_dim: usize,
    /// Dimension of values and outputs.
    pub value_dim: usize,
    /// `None` means 1/sqrt(head_dim).
    pub scale: Option<f64>,
    /// The causal rule.
    pub causal: Causal,
    /// Valid keys per batch entry, if any.
    pub key_lengths: Option<Vec<u32>>,
    /// The mask, if any.
    pub mask: Option<CaseMask>,
    /// The score function (none: the scaled dot product).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub score: Option<CaseScore>,
    /// Queries, `[batch, q_heads, q_len, head_dim]`, row-major.
    pub q: Vec<f32>,
    /// Keys, `[batch, kv_heads, kv_len, head_dim]`.
    pub k: Vec<f32>,
    /// Values, `[batch, kv_heads, kv_len, value_dim]`.
    pub v: Vec<f32>,
    /// Expected output, `[batch, q_heads, q_len, value_dim]` (float64 from an independent reference).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub out: Option<Vec<f64>>,
    /// Expected lse; `null` is `-inf`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub lse: Option<Vec<Option<f64>>>,
    /// Expected probabilities, `[batch, q_heads, q_len, kv_len]`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub probs: Option<Vec<f64>>,
}

#[cfg(feature = "serde")]
fn bad(path: &str, reason: impl Into<String>) -> crate::error::Error {
    crate::error::Error::CaseFile {
        path: path.to_string(),
        reason: reason.into(),
    }
}

impl Case {
    /// The problem's sizes.
    pub fn shape(&self) -> Shape {
        Shape {
            batch: self.batch,
            q_heads: self.q_heads,
            kv_heads: self.kv_heads,
            q_len: self.q_len,
            kv_len: self.kv_len,
            head_dim: self.head_dim,
            value_dim: self.value_dim,
        }
    }

    /// Whether variant `v` runs this case: every variant, except that the additive score has
    /// only the staged path (`Auto` picks it; fused and decode are a typed `Unsupported`).
    pub fn supports(&self, v: crate::options::Variant) -> bool {
        use crate::options::Variant;
        !matches!(self.score, Some(CaseScore::Additive { .. }))
            || matches!(v, Variant::Staged | Variant::Auto)
    }

    /// Reads a case file and checks it against the contract; the error says what breaks it.
    /// (Feature `serde`.)
    #[cfg(feature = "serde")]
    pub fn load(path: &str) -> Result<Case> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
        let case: Case = serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
        case.validate().map_err(|r| bad(path, r))?;
        Ok(case)
    }

    /// Checks sizes, data lengths and options against the contract.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let s = self.shape();
        for (n, d) in [
            ("batch", s.batch),
            ("q_heads", s.q_heads),
            ("kv_heads", s.kv_heads),
            ("q_len", s.q_len),
            ("kv_len", s.kv_len),
            ("head_dim", s.head_dim),
            ("value_dim", s.value_dim),
        ] {
            if d == 0 {
                return Err(format!("{n} is 0"));
            }
        }
        if s.q_heads % s.kv_heads != 0 {
            return Err(format!(
                "q_heads {} is not a multiple of kv_heads {}",
                s.q_heads, s.kv_heads
            ));
        }
        if let Some(CaseScore::Additive {
            attn_dim,
            w_q,
            w_k,
            bias,
            v_a,
        }) = &self.score
        {
            let a = *attn_dim;
            if !(1..=crate::options::MAX_ATTN_DIM).contains(&a) {
                return Err(format!(
                    "score.attn_dim {a} is outside 1..={}",
                    crate::options::MAX_ATTN_DIM
                ));
            }
            let d = s.head_dim;
            for (n, got, want) in [
                ("score.w_q", w_q.len(), a * d),
                ("score.w_k", w_k.len(), a * d),
                ("score.v_a", v_a.len(), a),
                ("score.bias", bias.as_ref().map_or(a, |b| b.len()), a),
            ] {
                if got != want {
                    return Err(format!(
                        "{n} has {got} values, [attn_dim, ...] needs {want}"
                    ));
                }
            }
            let all = w_q
                .iter()
                .chain(w_k)
                .chain(v_a)
                .chain(bias.iter().flatten());
            if all.clone().any(|x| !x.is_finite()) {
                return Err("score weights hold non-finite values".into());
            }
        }
        let len = |n: &str, got: usize, shape: &[usize]| {
            let want: usize = shape.iter().product();
            if got != want {
                Err(format!(
                    "{n} has {got} values, shape {shape:?} needs {want}"
                ))
            } else {
                Ok(())
            }
        };
        len("q", self.q.len(), &s.q())?;
        len("k", self.k.len(), &s.k())?;
        len("v", self.v.len(), &s.v())?;
        if self.dtype != DType::F32 {
            for (n, data) in [("q", &self.q), ("k", &self.k), ("v", &self.v)] {
                if let Some(i) = data
                    .iter()
                    .position(|&x| !self.dtype.fits(x) || self.dtype.round(x) != x)
                {
                    return Err(format!(
                        "{n}[{i}] = {} is not exactly representable in {}",
                        data[i], self.dtype
                    ));
                }
            }
        }
        if let Some(o) = &self.out {
            len("out", o.len(), &s.out())?;
        }
        if let Some(l) = &self.lse {
            len("lse", l.len(), &s.lse())?;
        }
        if let Some(p) = &self.probs {
            len("probs", p.len(), &s.probs())?;
        }
        if let Some(m) = &self.mask {
            let t = s.probs();
            if m.shape.len() != 4 || m.shape.iter().zip(t).any(|(&g, t)| g != t && g != 1) {
                return Err(format!(
                    "mask shape {:?} cannot broadcast to {t:?}",
                    m.shape
                ));
            }
            len("mask", m.data.len(), &m.shape)?;
            if m.data.iter().any(|x| !x.is_finite()) {
                return Err("mask holds non-finite values".into());
            }
        }
        if let Some(kl) = &self.key_lengths {
            if kl.len() != s.batch {
                return Err(format!(
                    "key_lengths has {} entries, batch is {}",
                    kl.len(),
                    s.batch
                ));
            }
            if let Some(l) = kl.iter().find(|&&l| l as usize > s.kv_len) {
                return Err(format!("key length {l} exceeds kv_len {}", s.kv_len));
            }
        }
        if let Some(sc) = self.scale {
            if !sc.is_finite() {
                return Err(format!("scale {sc} is not finite"));
            }
        }
        Ok(())
    }

    /// Uploads Q, K and V (in the case's dtype) and the mask (f32), and builds the matching
    /// options.
    pub fn upload(&self, ctx: &Context) -> Result<(Tensor, Tensor, Tensor, AttentionOptions)> {
        let s = self.shape();
        let q = Tensor::from_f32(ctx, &s.q(), &self.q, self.dtype)?;
        let k = Tensor::from_f32(ctx, &s.k(), &self.k, self.dtype)?;
        let v = Tensor::from_f32(ctx, &s.v(), &self.v, self.dtype)?;
        let mask = match &self.mask {
            Some(m) => Some(Mask {
                kind: m.kind,
                tensor: Tensor::from_data(ctx, &m.shape, &m.data)?,
            }),
            None => None,
        };
        let additive = match &self.score {
            Some(CaseScore::Additive {
                attn_dim,
                w_q,
                w_k,
                bias,
                v_a,
            }) => {
                let (a, d) = (*attn_dim, self.head_dim);
                Some(crate::options::AdditiveScore {
                    w_q: Tensor::from_data(ctx, &[a, d], w_q)?,
                    w_k: Tensor::from_data(ctx, &[a, d], w_k)?,
                    bias: bias
                        .as_ref()
                        .map(|b| Tensor::from_data(ctx, &[a], b))
                        .transpose()?,
                    v_a: Tensor::from_data(ctx, &[a], v_a)?,
                })
            }
            _ => None,
        };
        let opts = AttentionOptions {
            scale: self.scale.map(|x| x as f32),
            causal: self.causal,
            key_lengths: self.key_lengths.clone(),
            mask,
            additive,
            ..Default::default()
        };
        Ok((q, k, v, opts))
    }

    /// Random inputs uniform in [-1, 1) from `seed`, no masks.
    pub fn random(name: impl Into<String>, shape: Shape, seed: u64) -> Case {
        let mut rng = SeededRng::seed_from_u64(seed);
        let mut gen =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let q = gen(shape.q().iter().product());
        let k = gen(shape.k().iter().product());
        let v = gen(shape.v().iter().product());
        Case {
            name: name.into(),
            dtype: DType::F32,
            batch: shape.batch,
            q_heads: shape.q_heads,
            kv_heads: shape.kv_heads,
            q_len: shape.q_len,
            kv_len: shape.kv_len,
            head_dim: shape.head_dim,
            value_dim: shape.value_dim,
            scale: None,
            causal: Causal::None,
            key_lengths: None,
            mask: None,
            score: None,
            q,
            k,
            v,
            out: None,
            lse: None,
            probs: None,
        }
    }

    /// The same case in `dtype`: Q, K and V rounded to it (to nearest, ties to even), so the
    /// reference reads exactly what the GPU gets. The mask stays f32.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        for x in self.q.iter_mut().chain(&mut self.k).chain(&mut self.v) {
            *x = dtype.round(x.clamp(-dtype.max_finite(), dtype.max_finite()));
        }
        self
    }

    /// The same case with causal rule `c`.
    pub fn with_causal(mut self, c: Causal) -> Self {
        self.causal = c;
        self
    }
    /// The same case with score scale `s`.
    pub fn with_scale(mut self, s: f64) -> Self {
        self.scale = Some(s);
        self
    }
    /// The same case with these key lengths (one per batch entry).
    pub fn with_key_lengths(mut self, kl: Vec<u32>) -> Self {
        self.key_lengths = Some(kl);
        self
    }
    /// Multiplies Q by `f`, making logits large (tests max subtraction); the products are
    /// rounded to the case's dtype.
    pub fn with_q_scaled(mut self, f: f32) -> Self {
        let d = self.dtype;
        self.q
            .iter_mut()
            .for_each(|x| *x = d.round((*x * f).clamp(-d.max_finite(), d.max_finite())));
        self
    }

    /// A random mask of `kind` whose dimensions are 1 where `broadcast` says so. Bool masks keep
    /// each key with probability `keep`; additive masks draw from [-4, 4) with a -1e9 "strong mask"
    /// at probability 1 - `keep`.
    pub fn with_random_mask(
        mut self,
        kind: MaskKind,
        broadcast: [bool; 4],
        keep: f64,
        seed: u64,
    ) -> Self {
        let t = self.shape().probs();
        let shape: Vec<usize> = (0..4)
            .map(|d| if broadcast[d] { 1 } else { t[d] })
            .collect();
        let n: usize = shape.iter().product();
        let mut rng = SeededRng::seed_from_u64(seed ^ 0x6d61_736b);
        let data = (0..n)
            .map(|_| {
                let kept = rng.random_bool(keep);
                match kind {
                    MaskKind::Bool => kept as u8 as f32,
                    MaskKind::Additive => {
                        if kept {
                            rng.random_range(-4.0..4.0)
                        } else {
                            -1e9
                        }
                    }
                }
            })
            .collect();
        self.mask = Some(CaseMask { kind, shape, data });
        self
    }

    /// Masks every key of the given `(b, h, i)` rows through a full-shape bool mask (created if
    /// absent, expanded if broadcast). An additive mask cannot mask hard, so it is refused.
    pub fn with_fully_masked_rows(
        mut self,
        rows: &[(usize, usize, usize)],
    ) -> std::result::Result<Self, String> {
        if matches!(&self.mask, Some(m) if m.kind != MaskKind::Bool) {
            return Err("fully masked rows need a bool mask or none".into());
        }
        let t = self.shape().probs();
        let full: Vec<usize> = t.to_vec();
        let mut data = match self.mask.take() {
            None => vec![1.0f32; full.iter().product()],
            Some(m) => {
                // Expand the broadcast mask to full shape.
                let mut d = vec![0.0f32; full.iter().product()];
                for (idx, x) in d.iter_mut().enumerate() {
                    let j = idx % t[3];
                    let i = (idx / t[3]) % t[2];
                    let h = (idx / (t[3] * t[2])) % t[1];
                    let b = idx / (t[3] * t[2] * t[1]);
                    let pick = |dim: usize, v: usize| if m.shape[dim] == 1 { 0 } else { v };
                    let mi = ((pick(0, b) * m.shape[1] + pick(1, h)) * m.shape[2] + pick(2, i))
                        * m.shape[3]
                        + pick(3, j);
                    *x = m.data[mi];
                }
                d
            }
        };
        for &(b, h, i) in rows {
            let start = ((b * t[1] + h) * t[2] + i) * t[3];
            data[start..start + t[3]].iter_mut().for_each(|x| *x = 0.0);
        }
        self.mask = Some(CaseMask {
            kind: MaskKind::Bool,
            shape: full,
            data,
        });
        Ok(self)
    }
}
