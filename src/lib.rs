#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod attention;
pub mod case;
pub mod check;
pub mod conformance;
mod context;
mod decode;
mod error;
mod fused;
pub mod kernels;
pub mod known_issues;
mod options;
pub mod reference;
pub mod rng;
mod staged;
pub mod subgroups;
mod tensor;
pub mod tuning;

pub use attention::{AttentionOutput, Shape};
pub use context::{Context, ContextOptions, OPTIONAL_FEATURES};
pub use error::{Error, Result, TensorRole};
pub use options::{AttentionOptions, Causal, Mask, MaskKind, Variant};
pub use tensor::Tensor;
