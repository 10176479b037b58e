//! The peer: burn 0.22's `burn::tensor::module::attention` on burn's own wgpu device (the same
//! adapter: burn picks the default wgpu adapter, which is lavapipe on a machine without a GPU).
//! Built only with `--features burn`.
//!
//! burn's attention takes equal head counts for Q and K/V, so GQA shapes get K and V repeated
//! per query head on the host (burn then does the full multi-head work, as it would in a model
//! that expands K/V). It has top-left causal masking (`is_causal`) but no bottom-right alignment:
//! bottom-right rows with q_len != kv_len are not timed on burn.

use std::time::Instant;

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor, TensorData};

use wgpu_attention::{Causal, Shape};

pub struct BurnPeer {
    device: Device,
}

impl BurnPeer {
    pub fn new() -> Self {
        Self {
            device: Device::default(),
        }
    }

    pub fn describe(&self) -> String {
        format!("{:?}", self.device)
    }

    /// Wall time of each of `reps` calls (attention and a device sync), after `warmup` calls.
    /// `None` when burn has no equivalent of the options.
    pub fn time(
        &self,
        shape: &Shape,
        causal: Causal,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        warmup: usize,
        reps: usize,
    ) -> Option<Vec<f64>> {
        let is_causal = match causal {
            Causal::None => false,
            Causal::TopLeft => true,
            Causal::BottomRight if shape.q_len == shape.kv_len => true,
            Causal::BottomRight => return None,
        };
        let expand = |x: &[f32], d: usize| -> Vec<f32> {
            let g = shape.group();
            let per_head = shape.kv_len * d;
            let mut out = Vec::with_capacity(x.len() * g);
            for bh in 0..shape.batch * shape.kv_heads {
                for _ in 0..g {
                    out.extend_from_slice(&x[bh * per_head..(bh + 1) * per_head]);
                }
            }
            out
        };
        let qt = Tensor::<4>::from_data(
            TensorData::new(q.to_vec(), shape.q().to_vec()),
            &self.device,
        );
        let kshape = [shape.batch, shape.q_heads, shape.kv_len, shape.head_dim];
        let vshape = [shape.batch, shape.q_heads, shape.kv_len, shape.value_dim];
        let kt = Tensor::<4>::from_data(
            TensorData::new(expand(k, shape.head_dim), kshape.to_vec()),
            &self.device,
        );
        let vt = Tensor::<4>::from_data(
            TensorData::new(expand(v, shape.value_dim), vshape.to_vec()),
            &self.device,
        );
        let opts = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal,
        };
        let run = || {
            let o = attention(qt.clone(), kt.clone(), vt.clone(), None, None, opts);
            let _ = self.device.sync();
            o
        };
        for _ in 0..warmup {
            run();
        }
        let mut ts = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            run();
            ts.push(t.elapsed().as_secs_f64());
        }
        Some(ts)
    }
}

impl Default for BurnPeer {
    fn default() -> Self {
        Self::new()
    }
}
