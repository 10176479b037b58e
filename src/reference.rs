//! The CPU reference: the whole contract accumulated in f64, written plainly (one query row at a
//! time, no tiling, no online softmax) so that it shares no structure with the GPU kernels.
//!
//! Contract: `s[i][j] = scale · (q_i · k_j)` (+ additive mask), where query head `h` reads key/value
//! head `h / (q_heads / kv_heads)`; a key takes part only if every rule keeps it (causal
//! top-left `j <= i` or bottom-right `j <= i + kv_len - q_len`, `j < key_lengths[b]`, bool mask
//! nonzero); softmax over the kept keys; a row with no kept key has output 0, lse `-inf`, P 0.

use crate::case::Case;
use crate::options::{Causal, MaskKind};

/// Reference results for a set of query rows.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Global row indices `(b * q_heads + h) * q_len + i` these results are for, in order.
    pub rows: Vec<usize>,
    /// `rows.len() x value_dim`.
    pub out: Vec<f64>,
    /// One per row; `-inf` for a row with no kept key.
    pub lse: Vec<f64>,
    /// `rows.len() x kv_len`, when asked for.
    pub probs: Option<Vec<f64>>,
}

/// Reference results for every row of the case.
pub fn attention(case: &Case, want_probs: bool) -> Reference {
    let n = case.batch * case.q_heads * case.q_len;
    attention_rows(case, &(0..n).collect::<Vec<_>>(), want_probs)
}

/// Reference results for the given global rows only (for sampled checks of large shapes).
pub fn attention_rows(case: &Case, rows: &[usize], want_probs: bool) -> Reference {
    let (lq, lk, d, dv) = (case.q_len, case.kv_len, case.head_dim, case.value_dim);
    let group = case.q_heads / case.kv_heads;
    // The additive score's scale defaults to 1 (not 1/sqrt(d)); its projections in f64, K's
    // once for every key row.
    let additive = match &case.score {
        Some(crate::case::CaseScore::Additive {
            attn_dim,
            w_q,
            w_k,
            bias,
            v_a,
        }) => Some((*attn_dim, w_q, w_k, bias, v_a)),
        _ => None,
    };
    let scale = case.scale.unwrap_or(if additive.is_some() {
        1.0
    } else {
        1.0 / (d as f64).sqrt()
    });
    let project = |w: &[f32], x: &[f32], a: usize| -> Vec<f64> {
        (0..a)
            .map(|r| {
                (0..d)
                    .map(|e| w[r * d + e] as f64 * x[e] as f64)
                    .sum::<f64>()
            })
            .collect()
    };
    let k_proj: Vec<Vec<f64>> = match additive {
        Some((a, _, w_k, _, _)) => case.k.chunks(d).map(|krow| project(w_k, krow, a)).collect(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(rows.len() * dv);
    let mut lse = Vec::with_capacity(rows.len());
    let mut probs = want_probs.then(|| Vec::with_capacity(rows.len() * lk));
    let mut scores = vec![0f64; lk];
    let mut kept = vec![false; lk];
    for &row in rows {
        let i = row % lq;
        let h = (row / lq) % case.q_heads;
        let b = row / (lq * case.q_heads);
        let kvh = h / group;
        let qrow = &case.q[row * d..(row + 1) * d];
        let q_proj = additive.map(|(a, w_q, ..)| project(w_q, qrow, a));
        for j in 0..lk {
            let mut keep = match case.causal {
                Causal::None => true,
                Causal::TopLeft => j <= i,
                Causal::BottomRight => (j as i64) <= i as i64 + lk as i64 - lq as i64,
            };
            if let Some(kl) = &case.key_lengths {
                keep &= j < kl[b] as usize;
            }
            let krow_start = ((b * case.kv_heads + kvh) * lk + j) * d;
            let krow = &case.k[krow_start..krow_start + d];
            let mut dot = 0f64;
            if let (Some((a, _, _, bias, v_a)), Some(qp)) = (additive, &q_proj) {
                // Bahdanau: Σ_a v_a[a] tanh(qp[a] + kp[a] + bias[a]).
                let kp = &k_proj[krow_start / d];
                for r in 0..a {
                    let bb = bias.as_ref().map_or(0.0, |b| b[r] as f64);
                    dot += v_a[r] as f64 * (qp[r] + kp[r] + bb).tanh();
                }
            } else {
                for e in 0..d {
                    dot += qrow[e] as f64 * krow[e] as f64;
                }
            }
            let mut s = scale * dot;
            if let Some(m) = &case.mask {
                let pick = |dim: usize, v: usize| if m.shape[dim] == 1 { 0 } else { v };
                let mi = ((pick(0, b) * m.shape[1] + pick(1, h)) * m.shape[2] + pick(2, i))
                    * m.shape[3]
                    + pick(3, j);
                match m.kind {
                    MaskKind::Bool => keep &= m.data[mi] != 0.0,
                    MaskKind::Additive => s += m.data[mi] as f64,
                }
            }
            scores[j] = s;
            kept[j] = keep;
        }
        let max = (0..lk)
            .filter(|&j| kept[j])
            .map(|j| scores[j])
            .fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            out.extend(std::iter::repeat_n(0.0, dv));
            lse.push(f64::NEG_INFINITY);
            if let Some(p) = &mut probs {
                p.extend(std::iter::repeat_n(0.0, lk));
            }
            continue;
        }
        let sum: f64 = (0..lk)
            .filter(|&j| kept[j])
            .map(|j| (scores[j] - max).exp())
            .sum();
        let row_lse = max + sum.ln();
        let mut o = vec![0f64; dv];
        for j in 0..lk {
            let pj = if kept[j] {
                (scores[j] - row_lse).exp()
            } else {
                0.0
            };
            if let Some(p) = &mut probs {
                p.push(pj);
            }
            if pj != 0.0 {
                let vrow = ((b * case.kv_heads + kvh) * lk + j) * dv;
                for (oe, &ve) in o.iter_mut().zip(&case.v[vrow..vrow + dv]) {
                    *oe += pj * ve as f64;
                }
            }
        }
        out.extend(o);
        lse.push(row_lse);
    }
    Reference {
        rows: rows.to_vec(),
        out,
        lse,
        probs,
    }
}
