//! The sizes of one attention problem, and the work they mean (kept query–key pairs, FLOPs).

use crate::kinds::Causal;

/// Sizes of one attention problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Batch size.
    pub batch: usize,
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads; `q_heads` is a multiple of it.
    pub kv_heads: usize,
    /// Query rows per head.
    pub q_len: usize,
    /// Keys per head.
    pub kv_len: usize,
    /// Dimension of queries and keys.
    pub head_dim: usize,
    /// Dimension of values and outputs.
    pub value_dim: usize,
}

impl Shape {
    /// A shape from its seven sizes, in field order.
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
    /// Shape of `q`: `[batch, q_heads, q_len, head_dim]`.
    pub fn q(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.head_dim]
    }
    /// Shape of `k`: `[batch, kv_heads, kv_len, head_dim]`.
    pub fn k(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.head_dim]
    }
    /// Shape of `v`: `[batch, kv_heads, kv_len, value_dim]`.
    pub fn v(&self) -> [usize; 4] {
        [self.batch, self.kv_heads, self.kv_len, self.value_dim]
    }
    /// Shape of the output: `[batch, q_heads, q_len, value_dim]`.
    pub fn out(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.value_dim]
    }
    /// Shape of the lse: `[batch, q_heads, q_len]`.
    pub fn lse(&self) -> [usize; 3] {
        [self.batch, self.q_heads, self.q_len]
    }
    /// Shape of P: `[batch, q_heads, q_len, kv_len]`.
    pub fn probs(&self) -> [usize; 4] {
        [self.batch, self.q_heads, self.q_len, self.kv_len]
    }
    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.q_heads / self.kv_heads
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
