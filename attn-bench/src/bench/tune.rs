//! A short autotune: times the candidate values of each [`Tuning`] field on the adapter at hand
//! and returns the row to add to [`tuning::TABLE`](wgpu_attention::tuning::TABLE).
//!
//! One field at a time, the others at the adapter's current row. Every candidate runs in its own
//! context (tunings are fixed per context), is checked against the f64 reference before it is
//! timed, and the candidates of one field are timed in interleaved rounds, so that a slow spell
//! of a noisy machine falls on all of them alike. A candidate that fails its check or errors
//! (e.g. more workgroup memory than the adapter has) is reported and never chosen.

use serde::Serialize;

use super::sweep::{self, Config, Settings};
use super::timer::{stats, Timer};
use wgpu_attention::kernels::Tile;
use wgpu_attention::tuning::Tuning;
use wgpu_attention::Shape;
use wgpu_attention::{Causal, Variant};
use wgpu_attention::{Context, ContextOptions};

/// One timed candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub field: &'static str,
    pub value: String,
    pub shape: String,
    pub variant: String,
    /// Median over rounds, milliseconds; `None` when the candidate failed.
    pub median_ms: Option<f64>,
    pub error: Option<String>,
}

/// The autotune's result: every trial and the tuning it picks.
#[derive(Debug, Clone, Serialize)]
pub struct TuneResult {
    pub adapter: String,
    pub trials: Vec<Trial>,
    #[serde(skip)]
    pub tuning: Tuning,
    pub row: String,
}

/// Least relative gain over the current value that makes a tuning candidate win.
const MIN_GAIN: f64 = 0.03;

struct Candidate {
    value: String,
    tuning: Tuning,
    cfg: Config,
}

/// Times candidates in `rounds` interleaved rounds; returns the median of each (None: failed).
fn time_candidates(
    base: &ContextOptions,
    cands: &[Candidate],
    rounds: usize,
) -> Vec<(Option<f64>, Option<String>)> {
    let set = Settings {
        // Two warm-up runs: the second one's time sets how many runs a timed sample holds.
        warmup: 2,
        reps: 1,
        sample_rows: 8,
        min_sample_ms: 20.0,
        cpu: false,
        peak: None,
        #[cfg(feature = "burn")]
        burn: None,
    };
    let mut ctxs: Vec<Result<(Context, Timer), String>> = cands
        .iter()
        .map(|c| {
            let ctx = Context::new_blocking(ContextOptions {
                tuning: Some(c.tuning),
                ..base.clone()
            })
            .map_err(|e| e.to_string())?;
            let timer = Timer::new(&ctx).map_err(|e| e.to_string())?;
            Ok((ctx, timer))
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cands.len()];
    for _ in 0..rounds.max(1) {
        for (n, c) in cands.iter().enumerate() {
            let Ok((ctx, timer)) = &ctxs[n] else { continue };
            match sweep::run(ctx, timer, c.cfg, &set) {
                Ok(row) if row.check_passed => times[n].push(row.median_ms),
                Ok(row) => {
                    ctxs[n] = Err(format!(
                        "check failed (max abs err {:.2e})",
                        row.max_abs_err
                    ))
                }
                Err(e) => ctxs[n] = Err(e.to_string()),
            }
        }
    }
    ctxs.iter()
        .zip(&times)
        .map(|(c, t)| match c {
            Err(e) => (None, Some(e.clone())),
            Ok(_) => (Some(stats(t).0), None),
        })
        .collect()
}

/// Times the candidates and records a trial for each; returns their medians (None: failed).
fn time_and_record(
    base: &ContextOptions,
    field: &'static str,
    cands: &[Candidate],
    rounds: usize,
    trials: &mut Vec<Trial>,
) -> Vec<Option<f64>> {
    let res = time_candidates(base, cands, rounds);
    cands
        .iter()
        .zip(res)
        .map(|(c, (ms, err))| {
            trials.push(Trial {
                field,
                value: c.value.clone(),
                shape: shape_name(&c.cfg.shape),
                variant: c.cfg.variant.to_string(),
                median_ms: ms,
                error: err,
            });
            ms
        })
        .collect()
}

fn shape_name(s: &Shape) -> String {
    format!(
        "{}x{}/{}x{}x{}x{}",
        s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim
    )
}

/// Runs the autotune. `quick` uses shorter sequences (about a minute on lavapipe).
///
/// `subgroup_form`: the adapter runs the fused kernel's subgroup form (a fixed subgroup size),
/// whose rows per invocation are tuned too.
pub fn run(
    base: &ContextOptions,
    start: Tuning,
    adapter: &str,
    quick: bool,
    subgroup_form: bool,
) -> TuneResult {
    let rounds = 3;
    let l = if quick { 512 } else { 1024 };
    let prefill = Shape::new(1, 8, 8, l, l, 64, 64);
    // The workgroup-memory form throughout: the tuned fields are its tiles (the fused subgroup
    // form's tile is the subgroup size).
    let cfg = |shape, variant| Config {
        shape,
        causal: Causal::None,
        variant,
        subgroups: Some(false),
        dtype: wgpu_attention::DType::F32,
    };
    let mut best = start;
    let mut trials = Vec::new();
    // Each candidate is `best` with one field changed, so the fastest one becomes `best`.
    let mut pick = |field: &'static str, cands: Vec<Candidate>, best: &mut Tuning| {
        let ms = time_and_record(base, field, &cands, rounds, &mut trials);
        let winner = ms
            .iter()
            .enumerate()
            .filter_map(|(n, m)| m.map(|m| (m, n)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        // A candidate replaces the current value only when it is clearly faster: a change
        // picked from noise at the tuned shape can cost at others (on the H100, 32 KiB fused
        // tiles tied at head dim 64 and ran decode and head dim 128 at half speed).
        let current = cands
            .iter()
            .position(|c| c.tuning == *best)
            .and_then(|n| ms[n]);
        if let Some((m, n)) = winner {
            if current.is_none_or(|c| m < c * (1.0 - MIN_GAIN)) {
                *best = cands[n].tuning;
            }
        }
    };

    // Staged tile (QKᵀ and PV).
    let tiles = [(64, 64, 16), (64, 64, 8), (32, 32, 16), (64, 32, 16)];
    let cands = tiles
        .iter()
        .map(|&(tm, tn, tk)| Candidate {
            value: format!("{tm}x{tn}x{tk}"),
            tuning: Tuning {
                staged_tile: Tile { tm, tn, tk },
                ..best
            },
            cfg: cfg(prefill, Variant::Staged),
        })
        .collect();
    pick("staged_tile", cands, &mut best);

    // Fused kernel, workgroup-memory form: rows per workgroup, then tile bytes.
    let cands = [32u32, 64, 128]
        .iter()
        .map(|&r| Candidate {
            value: r.to_string(),
            tuning: Tuning {
                fused_rows: r,
                ..best
            },
            cfg: cfg(prefill, Variant::Fused),
        })
        .collect();
    pick("fused_rows", cands, &mut best);
    let cands = [8u32, 16, 32]
        .iter()
        .map(|&kib| Candidate {
            value: format!("{}", kib * 1024),
            tuning: Tuning {
                fused_tile_bytes: kib * 1024,
                ..best
            },
            cfg: cfg(prefill, Variant::Fused),
        })
        .collect();
    pick("fused_tile_bytes", cands, &mut best);

    // Fused kernel, subgroup form: query rows per invocation.
    if subgroup_form {
        let cands = [1u32, 2, 4, 8]
            .iter()
            .map(|&r| Candidate {
                value: r.to_string(),
                tuning: Tuning {
                    fused_sg_rows: r,
                    ..best
                },
                cfg: Config {
                    subgroups: Some(true),
                    ..cfg(prefill, Variant::Fused)
                },
            })
            .collect();
        pick("fused_sg_rows", cands, &mut best);
    }

    // Decode split kernel, workgroup-memory form: rows per workgroup.
    let decode_shape = Shape::new(1, 32, 8, 1, if quick { 2048 } else { 8192 }, 128, 128);
    let cands = [16u32, 32, 64]
        .iter()
        .map(|&r| Candidate {
            value: r.to_string(),
            tuning: Tuning {
                decode_rows: r,
                ..best
            },
            cfg: cfg(decode_shape, Variant::Decode),
        })
        .collect();
    pick("decode_rows", cands, &mut best);

    // Dispatch size: the fused kernel as `auto` runs it (its subgroup form where the adapter has
    // one) on a longer sequence, whose dispatches the default bound splits over heads and rows.
    let long = Shape::new(1, 8, 8, 4 * l, 4 * l, 64, 64);
    let cands = [30u32, 33, 36]
        .iter()
        .map(|&e| Candidate {
            value: format!("2^{e}"),
            tuning: Tuning {
                dispatch_work: 1 << e,
                ..best
            },
            cfg: Config {
                subgroups: None,
                ..cfg(long, Variant::Fused)
            },
        })
        .collect();
    pick("dispatch_work", cands, &mut best);

    // Decode against fused, each as `auto` would run it (its subgroup form where the adapter has
    // one), Hq=32 Hkv=8 D=128. Decode's slices of the key axis pay off at one query row and long
    // keys; at more query rows per head, or few keys, fused may win.
    let mut race = |s: Shape, field: &'static str, value: String, best: &Tuning| -> bool {
        let cands: Vec<Candidate> = [Variant::Decode, Variant::Fused]
            .iter()
            .map(|&v| Candidate {
                value: value.clone(),
                tuning: *best,
                cfg: Config {
                    subgroups: None,
                    ..cfg(s, v)
                },
            })
            .collect();
        let ms = time_and_record(base, field, &cands, rounds, &mut trials);
        matches!((ms[0], ms[1]), (Some(d), Some(f)) if d < f)
    };
    // The longest query decode takes: the largest of 1, 2, 4, 8, 16 query rows up to which decode
    // won at every one tried, both at a short and at a middle key length (one threshold on the
    // key length serves every query length up to this one, so decode must win at short keys
    // too: on lavapipe, 8 query rows won at 2,048 keys and lost by 35-75% at 64 to 512). At least
    // 1: the threshold below then decides whether decode runs at all.
    let kv_lens = if quick { [256, 1024] } else { [256, 2048] };
    let mut max_q = 1;
    for q in [1usize, 2, 4, 8, 16] {
        let wins = kv_lens.iter().all(|&lk| {
            let s = Shape::new(1, 32, 8, q, lk, 128, 128);
            race(s, "decode_max_q_len", format!("q_len {q}"), &best)
        });
        if !wins {
            break;
        }
        max_q = q;
    }
    best.decode_max_q_len = max_q as u32;
    // The threshold at one query: the shortest key length from which decode won at every longer
    // length tried.
    let lens: &[usize] = if quick {
        &[16, 256, 1024, 4096]
    } else {
        &[16, 64, 256, 1024, 4096, 8192]
    };
    let mut decode_wins = Vec::new();
    for &lk in lens {
        let s = Shape::new(1, 32, 8, 1, lk, 128, 128);
        let wins = race(s, "decode_min_kv_len", format!("kv_len {lk}"), &best);
        decode_wins.push((lk, wins));
    }
    let threshold = decode_wins
        .iter()
        .rev()
        .take_while(|(_, w)| *w)
        .last()
        .map(|(lk, _)| *lk as u32);
    // Decode never winning at the lengths tried: keep it for longer sequences than those.
    best.decode_min_kv_len = threshold.unwrap_or(2 * *lens.last().unwrap_or(&8192) as u32);

    let t = best;
    let row = format!(
        "TuningRow {{\n    adapter: AdapterPattern {{ name: {adapter:?}, ..AdapterPattern::ANY }},\n    tuning: Tuning {{\n        staged_tile: Tile {{ tm: {}, tn: {}, tk: {} }},\n        fused_rows: {},\n        fused_tile_bytes: {},\n        fused_sg_rows: {},\n        fused_wide_loads: {},\n        decode_dims_in_lanes: {},\n        decode_max_q_len: {},\n        decode_min_kv_len: {},\n        decode_rows: {},\n        dispatch_work: 1 << {},\n    }},\n    source: \"attn-bench tune\",\n}},",
        t.staged_tile.tm,
        t.staged_tile.tn,
        t.staged_tile.tk,
        t.fused_rows,
        t.fused_tile_bytes,
        t.fused_sg_rows,
        t.fused_wide_loads,
        t.decode_dims_in_lanes,
        t.decode_max_q_len,
        t.decode_min_kv_len,
        t.decode_rows,
        t.dispatch_work.ilog2()
    );
    TuneResult {
        adapter: adapter.into(),
        trials,
        tuning: best,
        row,
    }
}
