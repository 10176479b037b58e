//! Decoding: greedy search, beam search and sampling, each a small function over a step function
//! that returns logits, so that any model can use them.
//!
//! A [`Step`] runs one position for B sequences at once and can reorder its state (a KV cache)
//! so that sequence b continues from sequence `from[b]`.

use wgpu_attention::rng::SeededRng;

use crate::error::{Error, Result};

/// One decoding step of a model over B sequences.
pub trait Step {
    /// The logits of the next token of each sequence, `tokens[b]` being its token at `pos`.
    fn step(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<Vec<f32>>>;
    /// Sequence b continues from sequence `from[b]` (beam search).
    fn reorder(&mut self, from: &[usize]) -> Result<()>;
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// Runs B sequences token by token, `pick` choosing each next token from its logits, until
/// every sequence has produced `eos` or `max_steps` tokens. Returns each sequence's tokens
/// (without `bos` and `eos`).
fn token_by_token(
    step: &mut dyn Step,
    batch: usize,
    bos: u32,
    eos: u32,
    max_steps: usize,
    mut pick: impl FnMut(&[f32]) -> u32,
) -> Result<Vec<Vec<u32>>> {
    let mut tokens = vec![bos; batch];
    let mut out = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    for pos in 0..max_steps {
        let logits = step.step(&tokens, pos)?;
        for b in 0..batch {
            let t = pick(&logits[b]);
            tokens[b] = t;
            if !done[b] {
                if t == eos {
                    done[b] = true;
                } else {
                    out[b].push(t);
                }
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    Ok(out)
}

/// Greedy search for B sequences: the most likely token at every step, until `eos` or
/// `max_steps` tokens. Returns each sequence's tokens (without `bos` and `eos`).
pub fn greedy(
    step: &mut dyn Step,
    batch: usize,
    bos: u32,
    eos: u32,
    max_steps: usize,
) -> Result<Vec<Vec<u32>>> {
    token_by_token(step, batch, bos, eos, max_steps, argmax)
}

/// Beam search options.
#[derive(Debug, Clone, Copy)]
pub struct Beam {
    /// Beams kept at every step (the step function runs this many sequences).
    pub width: usize,
    /// Length penalty α: a finished hypothesis scores log p / ((5 + len) / 6)^α (GNMT); 0 ranks
    /// by log-probability alone.
    pub length_penalty: f64,
}

/// Beam search for one sentence over a step function that runs `width` sequences (all starting
/// from the same state). Returns the best hypothesis (tokens without `bos`/`eos`) and its score.
pub fn beam(
    step: &mut dyn Step,
    opts: Beam,
    bos: u32,
    eos: u32,
    max_steps: usize,
) -> Result<(Vec<u32>, f64)> {
    let w = opts.width;
    if w == 0 {
        return Err(Error::Option {
            option: "width",
            reason: "at least 1 beam".into(),
        });
    }
    let penalty = |len: usize| ((5.0 + len as f64) / 6.0).powf(opts.length_penalty);
    // Live hypotheses: tokens and log-probability. At first one (the others are copies).
    let mut live: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
    let mut finished: Vec<(Vec<u32>, f64)> = Vec::new();
    let mut tokens = vec![bos; w];
    for pos in 0..max_steps {
        let logits = step.step(&tokens, pos)?;
        let mut cand: Vec<(f64, usize, u32)> = Vec::new();
        for (b, (_, score)) in live.iter().enumerate() {
            for (t, lp) in log_softmax(&logits[b]).into_iter().enumerate() {
                cand.push((score + lp, b, t as u32));
            }
        }
        cand.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next: Vec<(Vec<u32>, f64)> = Vec::new();
        let mut parents = Vec::new();
        for (score, b, t) in cand {
            if next.len() == w {
                break;
            }
            if t == eos {
                let hyp = live[b].0.clone();
                let n = hyp.len() + 1;
                finished.push((hyp, score / penalty(n)));
                continue;
            }
            let mut hyp = live[b].0.clone();
            hyp.push(t);
            next.push((hyp, score));
            parents.push(b);
        }
        // Stop when no live hypothesis can beat the best finished one any more (log-probabilities
        // only fall) or nothing is live.
        let best_done = finished
            .iter()
            .map(|f| f.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let best_live = next
            .iter()
            .map(|(h, s)| s / penalty(h.len() + 1))
            .fold(f64::NEG_INFINITY, f64::max);
        if next.is_empty()
            || (finished.len() >= w && best_live < best_done && opts.length_penalty == 0.0)
        {
            break;
        }
        // Every one of the `width` sequences follows a live hypothesis (repeat the last when
        // fewer are live), and the caches follow their parents.
        let mut from: Vec<usize> = parents.clone();
        while from.len() < w {
            from.push(*parents.last().unwrap_or(&0));
        }
        step.reorder(&from)?;
        tokens = (0..w)
            .map(|b| {
                *next[b.min(next.len() - 1)]
                    .0
                    .last()
                    .expect("live hypotheses have a token")
            })
            .collect();
        live = next;
    }
    for (h, s) in live {
        let n = h.len() + 1;
        finished.push((h, s / penalty(n)));
    }
    Ok(finished
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default())
}

/// Sampling options.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Softmax temperature; 0 takes the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    pub top_p: f64,
    /// Seed of the random draws: the same seed gives the same output.
    pub seed: u64,
}

/// Samples B sequences token by token with temperature, top-k and top-p (nucleus) filtering.
pub fn sample(
    step: &mut dyn Step,
    batch: usize,
    opts: Sampling,
    bos: u32,
    eos: u32,
    max_steps: usize,
) -> Result<Vec<Vec<u32>>> {
    let valid = opts.temperature >= 0.0 && opts.top_p > 0.0 && opts.top_p <= 1.0;
    if !valid {
        return Err(Error::Option {
            option: "sampling",
            reason: format!(
                "temperature {} must be >= 0 and top_p {} in (0, 1]",
                opts.temperature, opts.top_p
            ),
        });
    }
    let mut rng = SeededRng::seed_from_u64(opts.seed);
    token_by_token(step, batch, bos, eos, max_steps, |l| {
        pick(l, opts, &mut rng)
    })
}

/// One token drawn from `logits` under the sampling options.
fn pick(logits: &[f32], opts: Sampling, rng: &mut SeededRng) -> u32 {
    if opts.temperature == 0.0 || opts.top_k == 1 {
        return argmax(logits);
    }
    let lp = log_softmax(
        &logits
            .iter()
            .map(|&x| (x as f64 / opts.temperature) as f32)
            .collect::<Vec<_>>(),
    );
    let mut order: Vec<usize> = (0..lp.len()).collect();
    order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
    if opts.top_k > 0 {
        order.truncate(opts.top_k);
    }
    let mut kept = Vec::new();
    let mut mass = 0.0;
    for &i in &order {
        kept.push(i);
        mass += lp[i].exp();
        if mass >= opts.top_p {
            break;
        }
    }
    let total: f64 = kept.iter().map(|&i| lp[i].exp()).sum();
    let mut u = rng.next_f64() * total;
    for &i in &kept {
        u -= lp[i].exp();
        if u <= 0.0 {
            return i as u32;
        }
    }
    *kept.last().unwrap_or(&0) as u32
}
