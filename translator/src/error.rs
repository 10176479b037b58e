//! The translator's errors: bad input, a missing or corrupt weights file, or the library's.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input text cannot be translated (empty, too long, a character outside the vocabulary).
    #[error("input: {0}")]
    Input(String),
    /// The weights file is missing, unreadable or not the model's.
    #[error("weights file {path:?}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A decoding option is out of range.
    #[error("decoding option {option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// What was wrong and what is expected.
        reason: String,
    },
    /// An error of the attention library (GPU calls).
    #[error(transparent)]
    Attention(#[from] wgpu_attention::Error),
}

/// The translator's result type.
pub type Result<T> = std::result::Result<T, Error>;
