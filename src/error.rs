//! Typed errors. Every message says what was wrong and, where it applies, what was expected.

use crate::dtype::DType;
use thiserror::Error;

/// Which tensor of an attention call an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// The queries `q`.
    Query,
    /// The keys `k`.
    Key,
    /// The values `v`.
    Value,
    /// The mask.
    Mask,
    /// The key lengths.
    KeyLengths,
    /// The output `out`.
    Output,
    /// The log-sum-exp `lse`.
    Lse,
    /// The attention weights `probs`.
    Probs,
}

impl std::fmt::Display for TensorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TensorRole::Query => "q",
            TensorRole::Key => "k",
            TensorRole::Value => "v",
            TensorRole::Mask => "mask",
            TensorRole::KeyLengths => "key_lengths",
            TensorRole::Output => "out",
            TensorRole::Lse => "lse",
            TensorRole::Probs => "probs",
        })
    }
}

/// Every way a call of the library can fail. Each message says what was wrong and, where it
/// applies, what was expected; nothing was dispatched or lost when an input error is returned.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// No adapter matched the backends and name filter asked for.
    #[error("no GPU adapter found for backends {backends} with name filter {filter:?}; adapters seen: [{seen}]")]
    NoAdapter {
        /// The backends searched.
        backends: String,
        /// The name filter, if any.
        filter: Option<String>,
        /// Every adapter seen, with its backend.
        seen: String,
    },

    /// The adapter refused to open a device (the message is wgpu's).
    #[error("request_device failed: {0}")]
    RequestDevice(String),

    /// The device was lost (driver reset, `destroy()`, removal). Every call after the loss returns this.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    /// The GPU ran out of memory during a call (captured by the library's error scope).
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),

    /// A wgpu validation or internal error captured by the library's error scope.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// What the library was doing.
        during: &'static str,
        /// wgpu's message.
        message: String,
    },

    /// A wait for the GPU passed `AttentionOptions::timeout` (the duration waited).
    #[error("waiting for the GPU timed out after {0:?}")]
    Timeout(std::time::Duration),

    /// A KV cache operation needs more free blocks than the pool has; nothing was changed.
    #[error("KV cache {op}: needs {needed} free blocks, the pool has {free} free of {total}; nothing was written (free or truncate sequences, or make a larger cache)")]
    CacheFull {
        /// The operation.
        op: &'static str,
        /// Blocks it needs.
        needed: usize,
        /// Blocks free.
        free: usize,
        /// Blocks in the pool.
        total: usize,
    },

    /// A KV cache has no free sequence slot.
    #[error("KV cache {op}: all {max_seqs} sequence slots are in use (free a sequence first)")]
    NoSequenceSlot {
        /// The operation.
        op: &'static str,
        /// Slots of the cache.
        max_seqs: usize,
    },

    /// A sequence id that is not live in this cache (never made, or freed).
    #[error("KV cache {op}: sequence {id} is not live in this cache (unknown or freed)")]
    UnknownSequence {
        /// The operation.
        op: &'static str,
        /// The id given.
        id: usize,
    },

    /// A KV cache argument is out of range (reorder indices, truncate lengths, repeated
    /// sequences, the cache's own configuration); the message says what was expected.
    #[error("KV cache {op}: {what}")]
    CacheArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong and what was expected.
        what: String,
    },

    /// A tensor has the wrong number of dimensions.
    #[error("{tensor}: expected rank {expected} ({layout}), got shape {got:?}")]
    Rank {
        /// The tensor concerned.
        tensor: TensorRole,
        /// What the contract expects.
        expected: usize,
        /// The layout the tensor must have.
        layout: &'static str,
        /// What was given.
        got: Vec<usize>,
    },

    /// One dimension of a tensor does not agree with the others.
    #[error("{tensor}: dimension `{dim}` must be {expected} ({why}), got {got}")]
    DimMismatch {
        /// The tensor concerned.
        tensor: TensorRole,
        /// The dimension's name.
        dim: &'static str,
        /// What the contract expects.
        expected: usize,
        /// What was given.
        got: usize,
        /// The rule it breaks.
        why: &'static str,
    },

    /// A dimension of a tensor is 0.
    #[error("{tensor}: dimension `{dim}` is 0; every size must be at least 1")]
    ZeroSize {
        /// The tensor concerned.
        tensor: TensorRole,
        /// The dimension's name.
        dim: &'static str,
    },

    /// `q_heads` is not a multiple of `kv_heads`.
    #[error("q_heads ({q_heads}) must be a multiple of kv_heads ({kv_heads}) for grouped-query attention")]
    HeadGroups {
        /// The query heads given.
        q_heads: usize,
        /// The key/value heads given.
        kv_heads: usize,
    },

    /// A mask's shape cannot broadcast to `[batch, q_heads, q_len, kv_len]`.
    #[error("mask: shape {got:?} cannot broadcast to [batch, q_heads, q_len, kv_len] = {target:?}; each dimension must equal the target or be 1")]
    MaskBroadcast {
        /// What was given.
        got: Vec<usize>,
        /// The shape it must broadcast to.
        target: [usize; 4],
    },

    /// `key_lengths` does not hold one length per batch entry.
    #[error("key_lengths: expected one length per batch entry ({expected}), got {got}")]
    KeyLengthsCount {
        /// What the contract expects.
        expected: usize,
        /// What was given.
        got: usize,
    },

    /// A key length is larger than `kv_len`.
    #[error("key_lengths[{index}] = {value} exceeds kv_len = {kv_len}")]
    KeyLengthTooLarge {
        /// Where: the batch entry, or the element index.
        index: usize,
        /// The value found.
        value: u32,
        /// The key length of the call.
        kv_len: usize,
    },

    /// The scale is NaN or infinite (the value given).
    #[error("scale must be finite, got {0}")]
    NonFiniteScale(f32),

    /// The opt-in input scan (`AttentionOptions::check_finite`) found NaN or ±inf.
    #[error("{tensor}: non-finite value {value} at index {index:?}; inputs must be finite when check_finite is set")]
    NonFiniteInput {
        /// The tensor concerned.
        tensor: TensorRole,
        /// Where: the batch entry, or the element index.
        index: Vec<usize>,
        /// The value found.
        value: f32,
    },

    /// A value handed to an upload does not fit the tensor's dtype (a magnitude beyond f16's
    /// 65504, or bf16's 3.39e38): an error rather than a silent infinity. Nothing was uploaded.
    #[error("{what}: value {value} at index {index:?} does not fit {dtype} (largest finite magnitude {max})", max = dtype.max_finite())]
    NotRepresentable {
        /// The tensor or upload concerned.
        what: String,
        /// The element's multi-dimensional index.
        index: Vec<usize>,
        /// The value given.
        value: f32,
        /// The tensor's dtype.
        dtype: DType,
    },

    /// A tensor's dtype is not the one expected (Q, K and V of a call share one; a mask is f32
    /// or theirs; an output is in the dtype the call writes).
    #[error("{what}: dtype {got}, expected {expected}")]
    DTypeMismatch {
        /// The tensor concerned.
        what: String,
        /// What was expected, in words.
        expected: String,
        /// The tensor's dtype.
        got: DType,
    },

    /// Data handed to an upload does not match the shape given with it.
    #[error("{what}: shape {shape:?} holds {expected} elements, data has {got}")]
    DataLength {
        /// What was being made or sized.
        what: String,
        /// The shape given.
        shape: Vec<usize>,
        /// What the contract expects.
        expected: usize,
        /// What was given.
        got: usize,
    },

    /// A buffer larger than the device allows was asked for; nothing was allocated.
    #[error("{what}: shape {shape:?} needs {bytes} bytes, more than the device's max_buffer_size of {limit} bytes")]
    AllocationTooLarge {
        /// What was being made or sized.
        what: String,
        /// The shape given.
        shape: Vec<usize>,
        /// The bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },

    /// A tensor is larger than one storage binding (or one buffer) of this adapter.
    #[error("{tensor}: {bytes} bytes exceed the adapter's {limit_name} of {limit} bytes")]
    TooLarge {
        /// The tensor concerned.
        tensor: TensorRole,
        /// The bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
        /// The limit's name in `wgpu::Limits`.
        limit_name: &'static str,
    },

    /// A size needs more workgroups in one dispatch dimension than the adapter allows.
    #[error("{what} = {value} needs {needed} workgroups in one dispatch dimension; the adapter's max_compute_workgroups_per_dimension is {limit}")]
    DispatchTooLarge {
        /// What was being made or sized.
        what: &'static str,
        /// The value found.
        value: usize,
        /// The workgroups it needs.
        needed: u64,
        /// The device's limit.
        limit: u32,
    },

    /// An option of [`AttentionOptions`](crate::AttentionOptions) has a value it cannot take.
    #[error("option {option}: {got} is not allowed; expected {expected}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What was given.
        got: String,
        /// What the contract expects.
        expected: String,
    },

    /// The requested variant cannot run this problem.
    #[error("variant {variant} cannot run this problem: {reason}")]
    Unsupported {
        /// The variant asked for.
        variant: &'static str,
        /// Why.
        reason: String,
    },

    /// A caller-provided output tensor has the wrong shape.
    #[error("{tensor}: output shape must be {expected:?}, got {got:?}")]
    OutputShape {
        /// The tensor concerned.
        tensor: TensorRole,
        /// What the contract expects.
        expected: Vec<usize>,
        /// What was given.
        got: Vec<usize>,
    },

    /// Mapping a buffer for readback failed (the message is wgpu's).
    #[error("buffer mapping failed: {0}")]
    Map(String),

    /// A golden-format case file that cannot be read or breaks the contract.
    #[error("case file {path}: {reason}")]
    CaseFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turns an error captured by an error scope into ours; a lost device gets its own variant.
    pub(crate) fn from_wgpu(during: &'static str, e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory(format!("during {during}")),
            wgpu::Error::Validation { description, .. }
            | wgpu::Error::Internal { description, .. } => {
                if description.to_ascii_lowercase().contains("lost") {
                    Error::DeviceLost(description)
                } else {
                    Error::Gpu {
                        during,
                        message: description,
                    }
                }
            }
        }
    }
}
