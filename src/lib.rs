#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers of this crate, lowest first. A module uses only modules of its own layer or below,
// and no two modules reach each other (tests/architecture.rs fails on a circle):
//
// 1. Foundations, using nothing above: `dtype` (element types and their host conversions),
//    `error`, `kinds` (causal rule, mask kind, variant), `rng`,
//    `tuning` (per-adapter tiles and thresholds), `known_issues`, `trace` (recording a call's GPU
//    work for replay elsewhere), `pipeline` (kernel sources and specialization keys, without
//    knowing any kernel).
// 2. `shape`: the sizes of a problem and the work they mean.
// 3. `context`: adapter, device, limits, error scopes, the pipeline cache.
// 4. `tensor`: GPU data, upload and readback.
// 5. The call's terms: `options` (`AttentionOptions`, masks), `output`, `problem` (inputs checked
//    against the contract and the device's limits).
// 6. `kernels`: the WGSL sources of `shaders/` and their host sides (parameters, bindings,
//    specialization, code generation).
// 7. The paths: `subgroups` (the subgroup probe), `fused`, `decode` (uses `fused`), `staged`.
// 8. `attention`: the attention call (kernel choice, recording, submission, `explain`).
// 9. On top: `kv_cache` (a paged KV cache and attention over it), `case` (problems on the host,
//    the golden-file format), `reference` (f64), `check` ("is this GPU right?"), `conformance`
//    (the suite).

mod attention;
pub mod case;
pub mod check;
pub mod conformance;
mod context;
mod decode;
mod dtype;
mod error;
mod fused;
pub mod kernels;
mod kinds;
pub mod known_issues;
pub mod kv_cache;
mod options;
mod output;
mod pipeline;
mod problem;
pub mod reference;
pub mod rng;
mod shape;
mod staged;
pub mod subgroups;
mod tensor;
pub mod trace;
pub mod tuning;

pub use attention::AttentionOutput;
pub use context::{Context, ContextOptions, OPTIONAL_FEATURES};
pub use dtype::DType;
pub use error::{Error, Result, TensorRole};
/// The `half` crate, whose `f16` and `bf16` the 16-bit uploads and downloads take and return.
pub use half;
pub use kv_cache::{KvCache, KvCacheConfig, SeqId};
pub use options::{
    AdditiveScore, AttentionOptions, Causal, Mask, MaskKind, Variant, DEFAULT_DISPATCH_WORK,
    MAX_ATTN_DIM,
};
pub use shape::Shape;
pub use tensor::Tensor;
