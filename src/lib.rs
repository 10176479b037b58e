//! # wgpu-attention
//!
//! `softmax(scale · Q Kᵀ + mask) V` as WGSL compute shaders on any GPU wgpu reaches (Vulkan, Metal,
//! DX12), with an f64 CPU reference and a checker to prove the results right on your adapter.
//!
//! ```no_run
//! use wgpu_attention::{AttentionOptions, Causal, Context, ContextOptions, Tensor};
//! # fn main() -> Result<(), wgpu_attention::Error> {
//! let ctx = Context::new_blocking(ContextOptions::default())?;
//! let (b, h, l, d) = (1, 2, 8, 4);
//! let data: Vec<f32> = (0..b * h * l * d).map(|i| (i % 7) as f32 * 0.1).collect();
//! let q = Tensor::from_data(&ctx, &[b, h, l, d], &data)?;
//! let out = ctx.attention_blocking(&q, &q, &q, &AttentionOptions::default().causal(Causal::TopLeft))?;
//! let o: Vec<f32> = out.out.read_blocking(&ctx)?;
//! assert_eq!(o.len(), b * h * l * d);
//! # Ok(()) }
//! ```
//!
//! The contract is stated in full in README.md; the module docs of [`reference`] restate it.

mod attention;
pub mod case;
pub mod check;
mod context;
mod error;
pub mod kernels;
mod options;
pub mod reference;
mod staged;
mod tensor;

pub use attention::{AttentionOutput, Shape};
pub use context::{Context, ContextOptions, OPTIONAL_FEATURES};
pub use error::{Error, Result, TensorRole};
pub use options::{AttentionOptions, Causal, Mask, MaskKind, Variant};
pub use tensor::Tensor;
