//! The attention call: input checks, output allocation, kernel choice, recording and submission.

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result, TensorRole};
use crate::options::{AttentionOptions, Variant};
pub use crate::output::AttentionOutput;
use crate::problem::{self, check_output, Problem};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{decode, fused, known_issues, staged};

/// What the chosen paths cannot run, checked after the contract's own checks
/// ([`problem::validate`]): an emulated subgroup size the generator lacks, dims beyond the flash
/// kernel, a decode problem beyond its splits or partial buffers, and dispatch grids beyond the
/// device's limit.
pub(crate) fn check_paths(ctx: &Context, shape: &Shape, opts: &AttentionOptions) -> Result<()> {
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
    if opts.additive.is_some() && matches!(opts.variant, Variant::Fused | Variant::Decode) {
        return Err(Error::Unsupported {
            variant: if opts.variant == Variant::Fused {
                "fused"
            } else {
                "decode"
            },
            reason: "the additive score runs on the staged variant (use staged or auto)".into(),
        });
    }
    if opts.variant == Variant::Fused && !fused::supports(shape) {
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
        if let Some(reason) = decode::unsupported(ctx, shape) {
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
    Ok(())
}

/// Checks every input against the contract and what the paths can run, before anything is
/// dispatched.
pub(crate) fn validate(
    ctx: &Context,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOptions,
) -> Result<Problem> {
    let prob = problem::validate(ctx, q, k, v, opts)?;
    check_paths(ctx, &prob.shape, opts)?;
    Ok(prob)
}

/// The variant a call runs: the caller's, or for `Auto` the adapter's choice by shape. Decode for
/// few queries against many keys, fused where its kernel is specialised, else staged; thresholds
/// from the adapter's tuning row, and never a variant the known-issue table marks on the adapter
/// (staged is the last resort even then, since something must run).
pub(crate) fn choose_variant(ctx: &Context, opts: &AttentionOptions, shape: &Shape) -> Variant {
    let requested = opts.variant;
    if requested != Variant::Auto {
        return requested;
    }
    // The additive score has only the staged path.
    if opts.additive.is_some() {
        return Variant::Staged;
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

/// Whether the variant's kernels write a 16-bit O in its dtype for this problem: the decode path's
/// merge always does (`shaders/merge.wgsl`), the fused path where `fused::direct_16bit` says so.
/// Elsewhere the kernels write f32, packed afterwards (`kernels::pack`), which costs an f32
/// scratch copy of O.
pub(crate) fn writes_16bit_output(
    ctx: &Context,
    prob: &Problem,
    opts: &AttentionOptions,
    variant: Variant,
) -> bool {
    match variant {
        Variant::Decode => true,
        Variant::Fused => fused::direct_16bit(ctx, prob, opts),
        Variant::Staged | Variant::Auto => false,
    }
}

/// Fresh outputs of a checked call: O in its dtype, lse and P (f32) where asked for, and the
/// variant the call runs.
pub(crate) fn new_outputs(
    ctx: &Context,
    prob: &Problem,
    opts: &AttentionOptions,
) -> Result<AttentionOutput> {
    let s = prob.shape;
    Ok(AttentionOutput {
        out: Tensor::empty(ctx, &s.out(), prob.out_dtype)?,
        lse: if opts.return_lse {
            Some(Tensor::empty(ctx, &s.lse(), DType::F32)?)
        } else {
            None
        },
        probs: if opts.return_probs {
            Some(Tensor::empty(ctx, &s.probs(), DType::F32)?)
        } else {
            None
        },
        variant: choose_variant(ctx, opts, &s),
    })
}

impl Context {
    /// What a call of this shape with these options runs, in words: the variant (the automatic
    /// choice resolved) and its kernel form, with the reason where a faster form was not taken
    /// (for example a subgroup size the probe did not confirm, or dims too large for the subgroup
    /// form at this size).
    pub fn explain(&self, shape: &Shape, opts: &AttentionOptions) -> String {
        let variant = choose_variant(self, opts, shape);
        let form = |rows, decode| {
            fused::flash_form(
                self,
                shape,
                opts.subgroups,
                opts.emulate_subgroups,
                rows,
                decode,
            )
            .describe()
        };
        match variant {
            Variant::Fused => format!("fused, {}", form(shape.q_len, false)),
            Variant::Decode => format!("decode, {}", form(shape.group() * shape.q_len, true)),
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
        let out = new_outputs(self, &prob, opts)?;
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
        check_output(&outputs.out, TensorRole::Output, &s.out(), prob.out_dtype)?;
        if let Some(l) = &outputs.lse {
            check_output(l, TensorRole::Lse, &s.lse(), DType::F32)?;
        }
        if let Some(p) = &outputs.probs {
            check_output(p, TensorRole::Probs, &s.probs(), DType::F32)?;
        }
        let variant = choose_variant(self, opts, &s);
        let outputs = AttentionOutput {
            variant,
            ..outputs.clone()
        };
        self.record_checked(encoder, &prob, q, k, v, opts, &outputs)?;
        Ok(variant)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_checked(
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
            None => Tensor::empty(self, &prob.shape.lse(), DType::F32)?,
        };
        // The decode path's merge and the fused path's single key chunk write a 16-bit O
        // themselves; otherwise the kernels write O in f32, and a 16-bit O is packed from an f32
        // scratch copy after.
        let packed = outputs.out.dtype() != DType::F32
            && !writes_16bit_output(self, prob, opts, outputs.variant);
        let full = AttentionOutput {
            out: if packed {
                Tensor::empty(self, &prob.shape.out(), DType::F32)?
            } else {
                outputs.out.clone()
            },
            ..outputs.clone()
        };
        self.record_paths(encoder, prob, q, k, v, opts, &full, &lse)?;
        if packed {
            crate::kernels::pack::record(self, encoder, &full.out, &outputs.out)?;
        }
        Ok(())
    }

    /// Records the chosen variant's kernels, writing O in its dtype where the variant can
    /// (`writes_16bit_output`), else in f32.
    #[allow(clippy::too_many_arguments)]
    fn record_paths(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        prob: &Problem,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
        lse: &Tensor,
    ) -> Result<()> {
        let lse = lse.clone();
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
                    let scratch_lse = Tensor::empty(self, &prob.shape.lse(), DType::F32)?;
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
            crate::trace::submit();
            Ok(out)
        })??;
        Ok(out)
    }
}
