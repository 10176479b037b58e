//! A checked problem: the inputs of a call validated against the contract and the device's
//! limits (shapes, head groups, masks and their broadcast, key lengths, scale, binding sizes), in
//! the form the kernels take. What a particular kernel path cannot run is checked above, where the
//! paths are (`attention`).

use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result, TensorRole};
use crate::kinds::{Causal, MaskKind};
use crate::options::AttentionOptions;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A checked problem, ready for a kernel.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub shape: Shape,
    /// The dtype of q, k and v.
    pub dtype: DType,
    /// The dtype O is written in: the inputs' unless the call asked for f32.
    pub out_dtype: DType,
    /// f16 data is unpacked with `unpack2x16float` (`Context::native_f16_unpack`).
    pub f16_native: bool,
    pub scale: f32,
    pub causal: Causal,
    pub key_lengths: Option<Vec<u32>>,
    /// Kind and element strides `[b, h, q, k]` of the mask, 0 along broadcast dimensions.
    pub mask: Option<(MaskKind, [u32; 4], Tensor)>,
    /// K and V are a KV cache's pools, read through a block table (`kv_cache.rs`).
    pub paged: Option<Paged>,
    /// Bottom-right causality at each batch entry's key length instead of kv_len (attention
    /// over a KV cache, whose sequences have their own lengths).
    pub sequence_causal: bool,
    /// Bahdanau's additive score (checked): attn_dim and the weights.
    pub additive: Option<(usize, crate::options::AdditiveScore)>,
}

/// The block table of a call over a KV cache: row b lists sequence b's blocks (padded with 0 to
/// `stride`); key j of sequence b is position j % block_size of block `table[b·stride + j / block_size]`.
#[derive(Debug, Clone)]
pub(crate) struct Paged {
    pub table: Vec<u32>,
    pub stride: u32,
    pub block_size: u32,
}

pub(crate) fn rank4(t: &Tensor, role: TensorRole, layout: &'static str) -> Result<[usize; 4]> {
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

pub(crate) fn fits_binding(ctx: &Context, role: TensorRole, bytes: u64) -> Result<()> {
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
    // One dtype for q, k and v.
    let dtype = q.dtype();
    for (role, t) in [(TensorRole::Key, k), (TensorRole::Value, v)] {
        if t.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                what: role.to_string(),
                expected: format!("{dtype}, the dtype of q (q, k and v share one dtype)"),
                got: t.dtype(),
            });
        }
    }
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
    fits_binding(ctx, TensorRole::Key, k.storage_bytes())?;
    fits_binding(ctx, TensorRole::Value, v.storage_bytes())?;
    complete(ctx, q, shape, dtype, opts)
}

/// The checks that follow from the shape, once K and V are known (plain tensors or a KV cache):
/// mask, key lengths, scale, the sizes of q and the outputs.
pub(crate) fn complete(
    ctx: &Context,
    q: &Tensor,
    shape: Shape,
    dtype: DType,
    opts: &AttentionOptions,
) -> Result<Problem> {
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
            let md = m.tensor.dtype();
            if md != DType::F32 && md != dtype {
                return Err(Error::DTypeMismatch {
                    what: TensorRole::Mask.to_string(),
                    expected: format!("f32 or {dtype}, the dtype of q, k and v"),
                    got: md,
                });
            }
            fits_binding(ctx, TensorRole::Mask, m.tensor.storage_bytes())?;
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

    let additive = match &opts.additive {
        None => None,
        Some(a) => Some((additive_dim(ctx, a, shape.head_dim)?, a.clone())),
    };
    let scale = match opts.scale {
        Some(s) if !s.is_finite() => return Err(Error::NonFiniteScale(s)),
        Some(s) => s,
        // Bahdanau's score has no 1/sqrt(d) in it.
        None if additive.is_some() => 1.0,
        None => 1.0 / (shape.head_dim as f32).sqrt(),
    };

    fits_binding(ctx, TensorRole::Query, q.storage_bytes())?;
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
    // Offsets inside kernels are u32 element indices; every binding is at most 4 GiB, so they fit.
    Ok(Problem {
        shape,
        dtype,
        out_dtype: if opts.output_f32 { DType::F32 } else { dtype },
        f16_native: (dtype == DType::F16
            || mask.as_ref().is_some_and(|m| m.2.dtype() == DType::F16))
            && ctx.native_f16_unpack(),
        scale,
        causal: opts.causal,
        key_lengths: opts.key_lengths.clone(),
        mask,
        paged: None,
        sequence_causal: false,
        additive,
    })
}

/// Checks an additive score's weights; returns attn_dim.
fn additive_dim(
    ctx: &Context,
    a: &crate::options::AdditiveScore,
    head_dim: usize,
) -> Result<usize> {
    let ws = a.w_q.shape();
    let dim = if ws.len() == 2 { ws[0] } else { 0 };
    let invalid = |what: &str, got: &Tensor, want: String| Error::InvalidOption {
        option: "additive",
        got: format!(
            "{what} of shape {:?} and dtype {}",
            got.shape(),
            got.dtype()
        ),
        expected: want,
    };
    if !(1..=crate::options::MAX_ATTN_DIM).contains(&dim) || ws[1] != head_dim {
        return Err(invalid(
            "w_q",
            &a.w_q,
            format!(
                "[attn_dim, head_dim] = [1..={}, {head_dim}]",
                crate::options::MAX_ATTN_DIM
            ),
        ));
    }
    let mat = [dim, head_dim];
    let vec = [dim];
    let checks: [(&str, &Tensor, &[usize]); 3] = [
        ("w_q", &a.w_q, &mat),
        ("w_k", &a.w_k, &mat),
        ("v_a", &a.v_a, &vec),
    ];
    for (name, t, want) in checks
        .into_iter()
        .chain(a.bias.iter().map(|b| ("bias", b, &vec[..])))
    {
        if t.shape() != want || t.dtype() != DType::F32 {
            return Err(invalid(name, t, format!("f32 of shape {want:?}")));
        }
        fits_binding(ctx, TensorRole::Mask, t.storage_bytes())?;
    }
    Ok(dim)
}

/// Checks a caller-provided output's shape and dtype.
pub(crate) fn check_output(
    t: &Tensor,
    role: TensorRole,
    expected: &[usize],
    dtype: DType,
) -> Result<()> {
    if t.shape() != expected {
        return Err(Error::OutputShape {
            tensor: role,
            expected: expected.to_vec(),
            got: t.shape().to_vec(),
        });
    }
    if t.dtype() != dtype {
        return Err(Error::DTypeMismatch {
            what: role.to_string(),
            expected: match role {
                TensorRole::Output => {
                    format!("{dtype} (the inputs' dtype, or f32 with AttentionOptions::output_f32)")
                }
                _ => format!("{dtype} (lse and probs are always f32)"),
            },
            got: t.dtype(),
        });
    }
    Ok(())
}
