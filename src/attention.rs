//! The attention call: input checks, output allocation, kernel choice, recording and submission.

use crate::context::Context;
use crate::error::{Error, Result, TensorRole};
use crate::options::{AttentionOptions, Causal, MaskKind, Variant};
use crate::tensor::Tensor;
use crate::{decode, fused, known_issues, staged};

/// Sizes of one attention problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
    pub value_dim: usize,
}

impl Shape {
    pub fn new(
        batch: usize,
        q_heads: usize,
        kv_heads: usize,
        q_len: usize,
        kv_len: usize,
        head_dim: usize,
        value_dim: usize,
    ) -> Shape {
        Shape {
            batch,
            q_heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim,
            value_dim,
        }
    }
    pub fn q(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.head_dim]
    }
    pub fn k(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.head_dim]
    }
    pub fn v(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.value_dim]
    }
    pub fn out(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.value_dim]
    }
    pub fn lse(&self) -> [usize; 3] {
        [self.batch, self.q_heads, self.q_len]
    }
    pub fn probs(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.kv_len]
    }
    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }
}

/// Results of a call. `lse` and `probs` are present when asked for.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// `[batch, q_heads, q_len, value_dim]`.
    pub out: Tensor,
    /// `[batch, q_heads, q_len]`; `-inf` for a row with no key.
    pub lse: Option<Tensor>,
    /// `[batch, q_heads, q_len, kv_len]`; 0 for masked keys.
    pub probs: Option<Tensor>,
    /// The variant that ran (the automatic choice resolved).
    pub variant: Variant,
}

/// A checked problem, ready for a kernel.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub shape: Shape,
    pub scale: f32,
    pub causal: Causal,
    pub key_lengths: Option<Vec<u32>>,
    /// Kind and element strides `[b, h, q, k]` of the mask, 0 along broadcast dimensions.
    pub mask: Option<(MaskKind, [u32; 4], Tensor)>,
}

impl Problem {
    /// The dispatch parameters every kernel shares: shape, scale, causal rule, mask strides and
    /// the key-lengths flag. Callers fill in the per-dispatch fields.
    pub(crate) fn params(&self) -> crate::kernels::Params {
        let s = self.shape;
        let mut p = crate::kernels::Params {
            batch: s.batch as u32,
            q_heads: s.q_heads as u32,
            kv_heads: s.kv_heads as u32,
            q_len: s.q_len as u32,
            kv_len: s.kv_len as u32,
            head_dim: s.head_dim as u32,
            value_dim: s.value_dim as u32,
            group: s.group() as u32,
            scale: self.scale,
            ..Default::default()
        };
        match self.causal {
            Causal::None => {}
            Causal::TopLeft => p.causal = 1,
            Causal::BottomRight => {
                p.causal = 1;
                p.causal_offset = s.kv_len as i32 - s.q_len as i32;
            }
        }
        if let Some((kind, strides, _)) = &self.mask {
            p.mask_kind = match kind {
                MaskKind::Bool => 1,
                MaskKind::Additive => 2,
            };
            [p.mask_sb, p.mask_sh, p.mask_sq, p.mask_sk] = *strides;
        }
        p.has_key_lengths = self.key_lengths.is_some() as u32;
        p
    }
}

fn rank4(t: &Tensor, role: TensorRole, layout: &'static str) -> Result<[usize; 4]> {
    let s = t.shape();
    if s.len() != 4 {
        return Err(Error::Rank {
            tensor: role,
            expected: 4,
            layout,
            got: s.to_vec(),
        });
    }
    Ok([s[0], s[1], s[2], s[3]])
}

fn nonzero(dims: [usize; 4], role: TensorRole, names: [&'static str; 4]) -> Result<()> {
    for (d, n) in dims.iter().zip(names) {
        if *d == 0 {
            return Err(Error::ZeroSize {
                tensor: role,
                dim: n,
            });
        }
    }
    Ok(())
}

fn same(
    role: TensorRole,
    dim: &'static str,
    expected: usize,
    got: usize,
    why: &'static str,
) -> Result<()> {
    if expected != got {
        return Err(Error::DimMismatch {
            tensor: role,
            dim,
            expected,
            got,
            why,
        });
    }
    Ok(())
}

fn fits_binding(ctx: &Context, role: TensorRole, bytes: u64) -> Result<()> {
    let limit = ctx.limits().max_storage_buffer_binding_size;
    if bytes > limit {
        return Err(Error::TooLarge {
            tensor: role,
            bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(())
}

/// Checks every input against the contract before anything is dispatched.
pub(crate) fn validate(
    ctx: &Context,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOptions,
) -> Result<Problem> {
    const QN: [&str; 4] = ["batch", "q_heads", "q_len", "head_dim"];
    const KN: [&str; 4] = ["batch", "kv_heads", "kv_len", "head_dim"];
    const VN: [&str; 4] = ["batch", "kv_heads", "kv_len", "value_dim"];
    let qs = rank4(q, TensorRole::Query, "[batch, q_heads, q_len, head_dim]")?;
    let ks = rank4(k, TensorRole::Key, "[batch, kv_heads, kv_len, head_dim]")?;
    let vs = rank4(v, TensorRole::Value, "[batch, kv_heads, kv_len, value_dim]")?;
    nonzero(qs, TensorRole::Query, QN)?;
    nonzero(ks, TensorRole::Key, KN)?;
    nonzero(vs, TensorRole::Value, VN)?;
    same(
        TensorRole::Key,
        "batch",
        qs[0],
        ks[0],
        "must equal q's batch",
    )?;
    same(
        TensorRole::Value,
        "batch",
        qs[0],
        vs[0],
        "must equal q's batch",
    )?;
    same(
        TensorRole::Key,
        "head_dim",
        qs[3],
        ks[3],
        "must equal q's head_dim",
    )?;
    same(
        TensorRole::Value,
        "kv_heads",
        ks[1],
        vs[1],
        "must equal k's kv_heads",
    )?;
    same(
        TensorRole::Value,
        "kv_len",
        ks[2],
        vs[2],
        "must equal k's kv_len",
    )?;
    if qs[1] % ks[1] != 0 {
        return Err(Error::HeadGroups {
            q_heads: qs[1],
            kv_heads: ks[1],
        });
    }
    let shape = Shape {
        batch: qs[0],
        q_heads: qs[1],
        kv_heads: ks[1],
        q_len: qs[2],
        kv_len: ks[2],
        head_dim: qs[3],
        value_dim: vs[3],
    };

    let mask = match &opts.mask {
        None => None,
        Some(m) => {
            let target = shape.probs();
            let ms = m.tensor.shape();
            if ms.len() != 4 || ms.iter().zip(target).any(|(&g, t)| g != t && g != 1) {
                return Err(Error::MaskBroadcast {
                    got: ms.to_vec(),
                    target,
                });
            }
            // Contiguous strides, zeroed along broadcast dimensions.
            let contiguous = [ms[1] * ms[2] * ms[3], ms[2] * ms[3], ms[3], 1];
            let mut strides = [0u32; 4];
            for d in 0..4 {
                strides[d] = if ms[d] == 1 { 0 } else { contiguous[d] as u32 };
            }
            fits_binding(ctx, TensorRole::Mask, m.tensor.bytes())?;
            Some((m.kind, strides, m.tensor.clone()))
        }
    };

    if let Some(kl) = &opts.key_lengths {
        if kl.len() != shape.batch {
            return Err(Error::KeyLengthsCount {
                expected: shape.batch,
                got: kl.len(),
            });
        }
        if let Some((index, &value)) = kl
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize > shape.kv_len)
        {
            return Err(Error::KeyLengthTooLarge {
                index,
                value,
                kv_len: shape.kv_len,
            });
        }
    }

    let scale = match opts.scale {
        Some(s) if !s.is_finite() => return Err(Error::NonFiniteScale(s)),
        Some(s) => s,
        None => 1.0 / (shape.head_dim as f32).sqrt(),
    };

    fits_binding(ctx, TensorRole::Query, q.bytes())?;
    fits_binding(ctx, TensorRole::Key, k.bytes())?;
    fits_binding(ctx, TensorRole::Value, v.bytes())?;
    let out_bytes = (shape.out().iter().product::<usize>() as u64) * 4;
    fits_binding(ctx, TensorRole::Output, out_bytes)?;
    if opts.return_probs {
        let p_bytes = (shape.probs().iter().product::<usize>() as u64) * 4;
        let limit = ctx.limits().max_buffer_size;
        if p_bytes > limit {
            return Err(Error::TooLarge {
                tensor: TensorRole::Probs,
                bytes: p_bytes,
                limit,
                limit_name: "max_buffer_size",
            });
        }
    }
    if let Some(sg) = opts.emulate_subgroups {
        let max = ctx.limits().max_compute_invocations_per_workgroup;
        if !crate::subgroups::FORM_SIZES.contains(&sg) || sg > max {
            return Err(Error::InvalidOption {
                option: "emulate_subgroups",
                got: sg.to_string(),
                expected: format!(
                    "one of {:?}, at most max_compute_invocations_per_workgroup ({max})",
                    crate::subgroups::FORM_SIZES
                ),
            });
        }
    }
    if opts.variant == Variant::Fused && !fused::supports(&shape) {
        return Err(Error::Unsupported {
            variant: "fused",
            reason: format!(
                "head_dim {} and value_dim {} must be at most {} (use staged or auto)",
                shape.head_dim,
                shape.value_dim,
                crate::kernels::flash::MAX_DIM
            ),
        });
    }
    if opts.variant == Variant::Decode {
        if let Some(reason) = decode::unsupported(ctx, &shape) {
            return Err(Error::Unsupported {
                variant: "decode",
                reason,
            });
        }
    }
    // Dispatch grids: every other dimension is split by the planner; these two are not.
    let max_wg = ctx.limits().max_compute_workgroups_per_dimension;
    for (what, value, per_group) in [
        (
            "value_dim",
            shape.value_dim,
            crate::kernels::DEFAULT_TILE.tn as usize,
        ),
        (
            "kv_len",
            shape.kv_len,
            crate::kernels::softmax::SEG as usize,
        ),
    ] {
        let needed = value.div_ceil(per_group) as u64;
        if needed > max_wg as u64 {
            return Err(Error::DispatchTooLarge {
                what,
                value,
                needed,
                limit: max_wg,
            });
        }
    }
    // Offsets inside kernels are u32 element indices; every binding is at most 4 GiB, so they fit.
    Ok(Problem {
        shape,
        scale,
        causal: opts.causal,
        key_lengths: opts.key_lengths.clone(),
        mask,
    })
}

fn check_output(t: &Tensor, role: TensorRole, expected: &[usize]) -> Result<()> {
    if t.shape() != expected {
        return Err(Error::OutputShape {
            tensor: role,
            expected: expected.to_vec(),
            got: t.shape().to_vec(),
        });
    }
    Ok(())
}

/// The variant a call runs: the caller's, or for `Auto` the adapter's choice by shape. Decode for
/// few queries against many keys, fused where its kernel is specialised, else staged; thresholds
/// from the adapter's tuning row, and never a variant the known-issue table marks on the adapter
/// (staged is the last resort even then, since something must run).
pub(crate) fn choose_variant(ctx: &Context, requested: Variant, shape: &Shape) -> Variant {
    if requested != Variant::Auto {
        return requested;
    }
    let t = ctx.tuning().0;
    let ok = |v| !known_issues::avoid(ctx.known_issues(), ctx.adapter_info(), v);
    let decode_shape =
        shape.q_len <= t.decode_max_q_len as usize && shape.kv_len >= t.decode_min_kv_len as usize;
    if decode_shape && decode::unsupported(ctx, shape).is_none() && ok(Variant::Decode) {
        Variant::Decode
    } else if fused::supports(shape) && ok(Variant::Fused) {
        Variant::Fused
    } else {
        Variant::Staged
    }
}

impl Context {
    /// What a call of this shape with these options runs, in words: the variant (the automatic
    /// choice resolved) and its kernel form, with the reason where a faster form was not taken
    /// (for example a subgroup size the probe did not confirm, or dims too large for the subgroup
    /// form at this size).
    pub fn explain(&self, shape: &Shape, opts: &AttentionOptions) -> String {
        let variant = choose_variant(self, opts.variant, shape);
        let form = |rows| {
            fused::flash_form(self, shape, opts.subgroups, opts.emulate_subgroups, rows).describe()
        };
        match variant {
            Variant::Fused => format!("fused, {}", form(shape.q_len)),
            Variant::Decode => format!("decode, {}", form(shape.group() * shape.q_len)),
            _ if fused::subgroups_enabled(self, opts.subgroups) => {
                "staged, subgroup row reductions".to_string()
            }
            _ => "staged, workgroup-memory row reductions".to_string(),
        }
    }

    /// Checks the inputs, allocates outputs and records the attention into `encoder`. Nothing is
    /// submitted: the caller may batch it with its own passes and submit once.
    pub fn record_attention(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        let prob = validate(self, q, k, v, opts)?;
        let s = prob.shape;
        let out = AttentionOutput {
            out: Tensor::empty(self, &s.out())?,
            lse: if opts.return_lse {
                Some(Tensor::empty(self, &s.lse())?)
            } else {
                None
            },
            probs: if opts.return_probs {
                Some(Tensor::empty(self, &s.probs())?)
            } else {
                None
            },
            variant: choose_variant(self, opts.variant, &s),
        };
        self.record_checked(encoder, &prob, q, k, v, opts, &out)?;
        Ok(out)
    }

    /// Like [`Context::record_attention`], writing into caller-provided outputs (reused buffers, or
    /// outputs filled with a poison value to prove every element is written). `outputs.lse` and
    /// `outputs.probs` are written when present. Returns the variant that was recorded.
    pub fn record_attention_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<Variant> {
        let prob = validate(self, q, k, v, opts)?;
        let s = prob.shape;
        check_output(&outputs.out, TensorRole::Output, &s.out())?;
        if let Some(l) = &outputs.lse {
            check_output(l, TensorRole::Lse, &s.lse())?;
        }
        if let Some(p) = &outputs.probs {
            check_output(p, TensorRole::Probs, &s.probs())?;
        }
        let variant = choose_variant(self, opts.variant, &s);
        let outputs = AttentionOutput {
            variant,
            ..outputs.clone()
        };
        self.record_checked(encoder, &prob, q, k, v, opts, &outputs)?;
        Ok(variant)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_checked(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        prob: &Problem,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<()> {
        // The lse is always computed; a call that did not ask for it gets an internal buffer.
        let lse = match &outputs.lse {
            Some(l) => l.clone(),
            None => Tensor::empty(self, &prob.shape.lse())?,
        };
        match outputs.variant {
            Variant::Staged | Variant::Auto => staged::record(
                self,
                encoder,
                prob,
                q,
                k,
                v,
                outputs,
                &lse,
                opts,
                staged::Mode::Attention,
            ),
            Variant::Fused | Variant::Decode => {
                if outputs.variant == Variant::Fused {
                    fused::record(self, encoder, prob, q, k, v, &outputs.out, &lse, opts)?;
                } else {
                    decode::record(self, encoder, prob, q, k, v, &outputs.out, &lse, opts)?;
                }
                if outputs.probs.is_some() {
                    // P after the main kernel, which stays the same with or without it.
                    let scratch_lse = Tensor::empty(self, &prob.shape.lse())?;
                    staged::record(
                        self,
                        encoder,
                        prob,
                        q,
                        k,
                        v,
                        outputs,
                        &scratch_lse,
                        opts,
                        staged::Mode::ProbsOnly,
                    )?;
                }
                Ok(())
            }
        }
    }

    /// Runs attention: records, submits and waits for the GPU (bounded by `opts.timeout`).
    pub async fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        self.scan_inputs(q, k, v, opts).await?;
        let out = self.submit_attention(q, k, v, opts, None)?;
        self.wait_idle(opts.timeout)?;
        Ok(out)
    }

    /// Blocking form of [`Context::attention`].
    pub fn attention_blocking(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        pollster::block_on(self.attention(q, k, v, opts))
    }

    /// Like [`Context::attention`] into caller-provided outputs.
    pub async fn attention_into(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<Variant> {
        self.scan_inputs(q, k, v, opts).await?;
        let out = self.submit_attention(q, k, v, opts, Some(outputs))?;
        self.wait_idle(opts.timeout)?;
        Ok(out.variant)
    }

    /// The opt-in scan of `opts.check_finite`: the first non-finite input element, as an error.
    async fn scan_inputs(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
    ) -> Result<()> {
        if !opts.check_finite {
            return Ok(());
        }
        let mask = opts.mask.as_ref().map(|m| (TensorRole::Mask, &m.tensor));
        for (tensor, t) in [
            (TensorRole::Query, q),
            (TensorRole::Key, k),
            (TensorRole::Value, v),
        ]
        .into_iter()
        .chain(mask)
        {
            if let Some((index, value)) = t.find_non_finite(self).await? {
                return Err(Error::NonFiniteInput {
                    tensor,
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Blocking form of [`Context::attention_into`].
    pub fn attention_into_blocking(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<Variant> {
        pollster::block_on(self.attention_into(q, k, v, opts, outputs))
    }

    /// Records and submits without waiting; used by the benchmark to time GPU work alone.
    pub fn submit_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: Option<&AttentionOutput>,
    ) -> Result<AttentionOutput> {
        self.check_alive()?;
        // Input errors are returned by the closure with their own types; the scope adds GPU errors.
        let out = self.scoped("attention", || -> Result<AttentionOutput> {
            let mut enc = self
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgpu-attention"),
                });
            let out = match outputs {
                Some(o) => {
                    let variant = self.record_attention_into(&mut enc, q, k, v, opts, o)?;
                    AttentionOutput {
                        variant,
                        ..o.clone()
                    }
                }
                None => self.record_attention(&mut enc, q, k, v, opts)?,
            };
            self.queue().submit([enc.finish()]);
            Ok(out)
        })??;
        Ok(out)
    }
}

impl Shape {
    /// Query–key pairs a causal rule keeps (key lengths and masks aside): the pair count that
    /// FLOP figures use, so causal attention is credited only with the work it must do.
    pub fn kept_pairs(&self, causal: Causal) -> u64 {
        let (lq, lk) = (self.q_len as i64, self.kv_len as i64);
        let offset = match causal {
            Causal::None => return (lq * lk) as u64,
            Causal::TopLeft => 0,
            Causal::BottomRight => lk - lq,
        };
        // Row i keeps keys 0 ..= min(i + offset, lk - 1), none when i + offset < 0.
        (0..lq).map(|i| (i + offset + 1).clamp(0, lk) as u64).sum()
    }

    /// FLOPs of one call: 2 · batch · q_heads · (head_dim + value_dim) per kept pair (QKᵀ and PV),
    /// which is the usual 4 · B · H · D when value_dim = head_dim.
    pub fn flops(&self, causal: Causal) -> f64 {
        2.0 * (self.batch * self.q_heads * (self.head_dim + self.value_dim)) as f64
            * self.kept_pairs(causal) as f64
    }
}
