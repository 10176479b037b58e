//! Typed errors. Every message says what was wrong and, where it applies, what was expected.

use thiserror::Error;

/// Which tensor of an attention call an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    Query,
    Key,
    Value,
    Mask,
    KeyLengths,
    Output,
    Lse,
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

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// No adapter matched the backends and name filter asked for.
    #[error("no GPU adapter found for backends {backends} with name filter {filter:?}; adapters seen: [{seen}]")]
    NoAdapter {
        backends: String,
        filter: Option<String>,
        seen: String,
    },

    #[error("request_device failed: {0}")]
    RequestDevice(String),

    /// The device was lost (driver reset, `destroy()`, removal). Every call after the loss returns this.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),

    /// A wgpu validation or internal error captured by the library's error scope.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        during: &'static str,
        message: String,
    },

    #[error("waiting for the GPU timed out after {0:?}")]
    Timeout(std::time::Duration),

    /// A tensor has the wrong number of dimensions.
    #[error("{tensor}: expected rank {expected} ({layout}), got shape {got:?}")]
    Rank {
        tensor: TensorRole,
        expected: usize,
        layout: &'static str,
        got: Vec<usize>,
    },

    /// One dimension of a tensor does not agree with the others.
    #[error("{tensor}: dimension `{dim}` must be {expected} ({why}), got {got}")]
    DimMismatch {
        tensor: TensorRole,
        dim: &'static str,
        expected: usize,
        got: usize,
        why: &'static str,
    },

    #[error("{tensor}: dimension `{dim}` is 0; every size must be at least 1")]
    ZeroSize {
        tensor: TensorRole,
        dim: &'static str,
    },

    #[error("q_heads ({q_heads}) must be a multiple of kv_heads ({kv_heads}) for grouped-query attention")]
    HeadGroups { q_heads: usize, kv_heads: usize },

    #[error("mask: shape {got:?} cannot broadcast to [batch, q_heads, q_len, kv_len] = {target:?}; each dimension must equal the target or be 1")]
    MaskBroadcast { got: Vec<usize>, target: [usize; 4] },

    #[error("key_lengths: expected one length per batch entry ({expected}), got {got}")]
    KeyLengthsCount { expected: usize, got: usize },

    #[error("key_lengths[{index}] = {value} exceeds kv_len = {kv_len}")]
    KeyLengthTooLarge {
        index: usize,
        value: u32,
        kv_len: usize,
    },

    #[error("scale must be finite, got {0}")]
    NonFiniteScale(f32),

    /// The opt-in input scan (`AttentionOptions::check_finite`) found NaN or ±inf.
    #[error("{tensor}: non-finite value {value} at index {index:?}; inputs must be finite when check_finite is set")]
    NonFiniteInput {
        tensor: TensorRole,
        index: Vec<usize>,
        value: f32,
    },

    /// Data handed to an upload does not match the shape given with it.
    #[error("{what}: shape {shape:?} holds {expected} elements, data has {got}")]
    DataLength {
        what: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },

    /// A buffer larger than the device allows was asked for; nothing was allocated.
    #[error("{what}: shape {shape:?} needs {bytes} bytes, more than the device's max_buffer_size of {limit} bytes")]
    AllocationTooLarge {
        what: String,
        shape: Vec<usize>,
        bytes: u64,
        limit: u64,
    },

    /// A tensor is larger than one storage binding (or one buffer) of this adapter.
    #[error("{tensor}: {bytes} bytes exceed the adapter's {limit_name} of {limit} bytes")]
    TooLarge {
        tensor: TensorRole,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    /// A size needs more workgroups in one dispatch dimension than the adapter allows.
    #[error("{what} = {value} needs {needed} workgroups in one dispatch dimension; the adapter's max_compute_workgroups_per_dimension is {limit}")]
    DispatchTooLarge {
        what: &'static str,
        value: usize,
        needed: u64,
        limit: u32,
    },

    /// An option of [`AttentionOptions`](crate::AttentionOptions) has a value it cannot take.
    #[error("option {option}: {got} is not allowed; expected {expected}")]
    InvalidOption {
        option: &'static str,
        got: String,
        expected: String,
    },

    /// The requested variant cannot run this problem.
    #[error("variant {variant} cannot run this problem: {reason}")]
    Unsupported {
        variant: &'static str,
        reason: String,
    },

    /// A caller-provided output tensor has the wrong shape.
    #[error("{tensor}: output shape must be {expected:?}, got {got:?}")]
    OutputShape {
        tensor: TensorRole,
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    #[error("buffer mapping failed: {0}")]
    Map(String),

    /// A golden-format case file that cannot be read or breaks the contract.
    #[error("case file {path}: {reason}")]
    CaseFile { path: String, reason: String },
}

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
