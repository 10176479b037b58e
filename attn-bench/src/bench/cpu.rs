//! A simple multithreaded f32 CPU attention: the baseline column of the sweep (the f64 reference
//! is the judge of correctness, this is the competitor). Query rows are split over the available
//! threads; each row computes its scores, a max-subtracted softmax and the weighted sum of V with
//! slice loops the compiler vectorises. Causal masking skips the masked keys.

use wgpu_attention::{Causal, Shape};

/// Computes attention for every row; returns `[batch, q_heads, q_len, value_dim]`.
pub fn attention(shape: &Shape, causal: Causal, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let s = *shape;
    let rows = s.batch * s.q_heads * s.q_len;
    let mut out = vec![0f32; rows * s.value_dim];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.div_ceil(threads).max(1);
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(per * s.value_dim).enumerate() {
            scope.spawn(move || {
                let mut scores = vec![0f32; s.kv_len];
                for (n, o) in chunk.chunks_mut(s.value_dim).enumerate() {
                    let row = t * per + n;
                    let i = row % s.q_len;
                    let bh = row / s.q_len;
                    let (b, h) = (bh / s.q_heads, bh % s.q_heads);
                    let kvh = b * s.kv_heads + h / s.group();
                    let keys = match causal {
                        Causal::None => s.kv_len,
                        Causal::TopLeft => (i + 1).min(s.kv_len),
                        Causal::BottomRight => (i as i64 + s.kv_len as i64 - s.q_len as i64 + 1)
                            .clamp(0, s.kv_len as i64)
                            as usize,
                    };
                    if keys == 0 {
                        continue;
                    }
                    let qr = &q[row * s.head_dim..(row + 1) * s.head_dim];
                    let kb = &k[kvh * s.kv_len * s.head_dim..];
                    let vb = &v[kvh * s.kv_len * s.value_dim..];
                    let mut max = f32::NEG_INFINITY;
                    for (j, sc) in scores[..keys].iter_mut().enumerate() {
                        let kr = &kb[j * s.head_dim..(j + 1) * s.head_dim];
                        let dot: f32 = qr.iter().zip(kr).map(|(a, b)| a * b).sum();
                        *sc = dot * scale;
                        max = max.max(*sc);
                    }
                    let mut sum = 0f32;
                    for sc in &mut scores[..keys] {
                        *sc = (*sc - max).exp();
                        sum += *sc;
                    }
                    let inv = 1.0 / sum;
                    for (j, &p) in scores[..keys].iter().enumerate() {
                        let vr = &vb[j * s.value_dim..(j + 1) * s.value_dim];
                        let w = p * inv;
                        for (oe, ve) in o.iter_mut().zip(vr) {
                            *oe += w * ve;
                        }
                    }
                }
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu_attention::case::Case;

    #[test]
    fn matches_the_reference() {
        for causal in Causal::ALL {
            let shape = Shape {
                batch: 2,
                q_heads: 4,
                kv_heads: 2,
                q_len: 13,
                kv_len: 9,
                head_dim: 7,
                value_dim: 5,
            };
            let c = Case::random("cpu", shape, 3).with_causal(causal);
            let got = attention(&shape, causal, &c.q, &c.k, &c.v);
            let r = wgpu_attention::reference::attention(&c, false);
            for (g, e) in got.iter().zip(&r.out) {
                assert!((*g as f64 - e).abs() < 1e-5, "{causal}: {g} vs {e}");
            }
        }
    }
}
