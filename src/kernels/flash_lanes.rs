//! The decode split kernel with head dims across lanes (`DL = 1` in the key of
//! `shaders/flash_subgroup.wgsl`): the generated parts of that file for this layout.
//!
//! The rows form (`flash.rs`, `gen_block`) puts query rows in lanes: each lane loads one key's
//! whole row and broadcasts it element by element, so every loaded element costs a broadcast and a
//! multiply-add per lane, and with a query-head group of 4 rows on 8 lanes half of that work is on
//! padding. Here every lane holds all R rows of the workgroup and owns a slice of the head dims
//! instead (lane l: elements [l·C, (l+1)·C) of q, of each K and V row, and of the output), as
//! Flash-Decoding and llama.cpp's Vulkan decode do:
//! - a block is SG keys; each lane loads its slice of every key's K row and takes partial dot
//!   products for each row;
//! - a reduce-scatter over the lanes (SG - 1 `subgroupShuffleXor` per row) leaves lane c with the
//!   whole score of key c for each row, so masks and exp run once per (row, key), spread over the
//!   lanes;
//! - the block's max and sum are xor-butterfly all-reductions: every lane gets bit-identical
//!   results (a + b == b + a in IEEE arithmetic), so the rows' (m, l) stay the same in every lane;
//! - each key's probability is broadcast (a literal lane), and each lane adds p·V over its slice.
//!
//! Loads are the same as the rows form's (every element of K and V once per workgroup), but
//! nothing is broadcast per element and no lane computes on padding rows. Measured on lavapipe in
//! docs/PERFORMANCE.md (optimisation log 20). Only the decode form, only native subgroups (no
//! emulated twin), only where the tuning row asks for it (`Tuning::decode_dims_in_lanes`).

use super::flash::{load_width, unpack4, wide_halves};

/// Rows per workgroup of the dims-across-lanes form: the rows of a query-head group (group ·
/// q_len), rounded up to a power of two so that lengths share pipelines, at most 8 (more rows take
/// more workgroups along x).
pub(crate) fn rows(group_rows: usize) -> u32 {
    (group_rows.clamp(1, 8) as u32).next_power_of_two()
}

/// How one lane covers a dim `d` (K: DK, V: DV) at `sg` lanes with loads of up to `width`
/// elements (`load_width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slice {
    /// The dim.
    pub d: u32,
    /// vec4s per lane: lane l covers vec4s [l·c4, (l+1)·c4) of a row.
    pub c4: u32,
    /// Elements per load (1 when the dim is not a multiple of 4: rows are read element by element).
    pub w: u32,
    /// Whether the lanes cover the row exactly (no lane reaches past its end).
    pub exact: bool,
}

pub(crate) fn slice(sg: u32, d: u32, width: u32) -> Slice {
    let d4 = d.div_ceil(4);
    let c4 = d4.div_ceil(sg);
    let w = if d % 4 != 0 {
        1
    } else {
        // The widest load that divides both the lane's slice and the row.
        [16, 8, 4]
            .into_iter()
            .find(|&w| w <= width && (4 * c4) % w == 0 && d % w == 0)
            .unwrap_or(4)
    };
    Slice {
        d,
        c4,
        w,
        exact: d4 == sg * c4,
    }
}

/// The slices of K and V for a key's constants, with the load widths their bindings are declared
/// with.
pub(crate) fn slices(sg: u32, dk: u32, dv: u32, wide: u32) -> (Slice, Slice) {
    (
        slice(sg, dk, load_width(wide, dk)),
        slice(sg, dv, load_width(wide, dv)),
    )
}

/// Statements defining `{x}{t}` for t in 0..c4: vec4 t of this lane's slice of row `row` of `buf`
/// (q, k or v, dtype `dt`). Past the row's end (lanes of an inexact slice) the value is zero when
/// `zero_tail`, else whatever the clamped load reads (V: those lanes' outputs are never stored).
fn load_slice(x: &str, buf: &str, row: &str, s: Slice, dt: u32, zero_tail: bool) -> String {
    let d4 = s.d.div_ceil(4);
    let mut c = String::new();
    let guard = |c: &mut String, name: String, t: u32| {
        if !s.exact && zero_tail {
            *c += &format!(
                "        let {name} = select(vec4<f32>(0.0), {name}_, lane * {}u + {t}u < {d4}u);\n",
                s.c4
            );
        }
    };
    // The variable a load first defines: `x{t}_` when a guard follows, else `x{t}`.
    let raw = |t: u32| {
        if !s.exact && zero_tail {
            format!("{x}{t}_")
        } else {
            format!("{x}{t}")
        }
    };
    // vec4 index of the lane's element t in the row, clamped into it.
    let v4 = |t: u32| {
        if s.exact {
            format!("lane * {}u + {t}u", s.c4)
        } else {
            format!("min(lane * {}u + {t}u, {}u)", s.c4, d4 - 1)
        }
    };
    for t in 0..s.c4 {
        match s.w {
            1 => {
                // Element by element; elements past the dim are zero.
                let parts: Vec<String> = (0..4)
                    .map(|i| {
                        format!(
                            "select(0.0, {buf}_1({row} * {}u + min(lane * {}u + {}u, {}u)), \
                             lane * {}u + {}u < {}u)",
                            s.d,
                            4 * s.c4,
                            4 * t + i,
                            s.d - 1,
                            4 * s.c4,
                            4 * t + i,
                            s.d
                        )
                    })
                    .collect();
                c += &format!("        let {x}{t} = vec4<f32>({});\n", parts.join(", "));
            }
            4 => {
                let load = format!("{buf}[{row} * {d4}u + {}]", v4(t));
                let val = if dt == 0 {
                    load
                } else {
                    format!("{}({load})", unpack4(dt))
                };
                c += &format!("        let {} = {val};\n", raw(t));
                guard(&mut c, format!("{x}{t}"), t);
            }
            8 if t % 2 == 0 => {
                // Two vec4s from one load; v4(t) is even, so halving it is exact (clamped: d4 - 1
                // rounds down to the last pair).
                c += &format!(
                    "        let {x}w{t} = {buf}[{row} * {}u + ({}) / 2u];\n",
                    s.d / 8,
                    v4(t)
                );
                let (lo, hi) = wide_halves(&format!("{x}w{t}"), dt);
                c += &format!("        let {} = {lo};\n", raw(t));
                c += &format!("        let {} = {hi};\n", raw(t + 1));
                guard(&mut c, format!("{x}{t}"), t);
                guard(&mut c, format!("{x}{}", t + 1), t + 1);
            }
            16 if t % 4 == 0 => {
                c += &format!(
                    "        let {x}w{t} = {buf}[{row} * {}u + ({}) / 4u];\n",
                    s.d / 16,
                    v4(t)
                );
                for (i, comp) in ["x", "y", "z", "w"].iter().enumerate() {
                    let i = i as u32;
                    c += &format!(
                        "        let {} = {}(u64_words({x}w{t}.{comp}));\n",
                        raw(t + i),
                        unpack4(dt)
                    );
                    guard(&mut c, format!("{x}{}", t + i), t + i);
                }
            }
            _ => {}
        }
    }
    c
}

/// Per row r of the workgroup: its place, q's slice (scaled), and the running (m, l) and output
/// slice. The decode split never accumulates across dispatches (its flags are 0: each split is one
/// dispatch), so the accumulator starts at zero.
pub(crate) fn prologue(sg: u32, r: u32, k: Slice, v: Slice, dt: u32) -> String {
    let mut c = String::new();
    // Lane bits for the reduce-scatter's selects.
    let mut m = sg / 2;
    while m >= 1 {
        c += &format!("    let lb{m} = (lane & {m}u) != 0u;\n");
        m /= 2;
    }
    for r in 0..r {
        c += &format!(
            "    let n{r} = wid.x * R + {r}u;\n    \
             let ok{r} = n{r} < p.group * p.q_len;\n    \
             let nn{r} = min(n{r}, p.group * p.q_len - 1u);\n    \
             let h{r} = kvh * p.group + nn{r} / p.q_len;\n    \
             let i{r} = nn{r} % p.q_len;\n    \
             let row{r} = (b * p.q_heads + h{r}) * p.q_len + i{r};\n    \
             let slot{r} = row{r} * p.nseg + wid.z;\n"
        );
        // q with the K slice's layout (its own binding is vec4s or scalars, never wide).
        let qs = Slice {
            w: if k.d % 4 == 0 { 4 } else { 1 },
            ..k
        };
        c += &load_slice(&format!("qq{r}_"), "q", &format!("row{r}"), qs, dt, true)
            .replace("        ", "    ");
        for t in 0..k.c4 {
            c += &format!("    let q{r}_{t} = qq{r}_{t} * p.scale;\n");
        }
        c += &format!("    var m{r} = MASKED;\n    var l{r} = 0.0;\n");
        for t in 0..v.c4 {
            c += &format!("    var a{r}_{t} = vec4<f32>(0.0);\n");
        }
    }
    c
}

/// One block of SG keys (jb .. jb + SG): partial scores, the reduce-scatter, masks and the online
/// softmax on each lane's key, then P·V over each lane's slice. The cross-lane steps work on the
/// rows four at a time, as the components of a vec4 (`ROWS4`): one shuffle, select or broadcast
/// serves four rows.
pub(crate) fn block(sg: u32, r: u32, k: Slice, v: Slice, dt: u32) -> String {
    let mut c = String::new();
    for key in 0..sg {
        c += &format!("        let kr{key} = kv_row(b, kvh, min(jb + {key}u, p.kv_len - 1u));\n");
    }
    // Row groups of up to four rows: group g holds rows 4g .. 4g + n - 1 in its components.
    let groups: Vec<(u32, u32)> = (0..r.div_ceil(4))
        .map(|g| (g, (r - 4 * g).min(4)))
        .collect();
    let ty = |n: u32| {
        if n == 1 {
            "f32".to_string()
        } else {
            format!("vec{n}<f32>")
        }
    };
    let comp = |n: u32, i: u32| {
        if n == 1 {
            String::new()
        } else {
            format!(".{}", ["x", "y", "z", "w"][i as usize])
        }
    };
    // Partial scores: this lane's slice of q·k for every row and key.
    for key in 0..sg {
        c += &load_slice(&format!("k{key}_"), "k", &format!("kr{key}"), k, dt, true);
        for &(g, n) in &groups {
            let rows: Vec<String> = (0..n)
                .map(|i| {
                    let r = 4 * g + i;
                    (0..k.c4)
                        .map(|t| format!("dot(q{r}_{t}, k{key}_{t})"))
                        .collect::<Vec<_>>()
                        .join(" + ")
                })
                .collect();
            c += &format!(
                "        let ps{g}_{key} = {}({});\n",
                ty(n),
                rows.join(", ")
            );
        }
    }
    for &(g, n) in &groups {
        // Reduce-scatter: at the step with lane bit m, each lane keeps the half of its values
        // whose keys have its bit m and adds its partner's (lane ^ m) partial of the same keys.
        let mut vals: Vec<String> = (0..sg).map(|key| format!("ps{g}_{key}")).collect();
        let mut m = sg / 2;
        while vals.len() > 1 {
            let half = vals.len() / 2;
            let mut next = Vec::with_capacity(half);
            for j in 0..half {
                let (lo, hi) = (&vals[j], &vals[j + half]);
                let name = format!("rs{g}_{m}_{j}");
                c += &format!(
                    "        let {name} = select({lo}, {hi}, lb{m}) + \
                     subgroupShuffleXor(select({hi}, {lo}, lb{m}), {m}u);\n"
                );
                next.push(name);
            }
            vals = next;
            m /= 2;
        }
        // Lane c now holds the group's scores against key jb + c: masks, then the block's max.
        let scores: Vec<String> = (0..n)
            .map(|i| {
                let r = 4 * g + i;
                format!(
                    "masked_score({}{}, b, h{r}, i{r}, jb + lane, j_stop)",
                    vals[0],
                    comp(n, i)
                )
            })
            .collect();
        c += &format!("        let s{g} = {}({});\n", ty(n), scores.join(", "));
        let tmax = all_reduce(&mut c, &format!("s{g}"), &format!("mx{g}"), sg, "max");
        let mut probs = Vec::new();
        for i in 0..n {
            let r = 4 * g + i;
            c += &format!(
                "        let st{r} = online_step(&m{r}, &l{r}, {tmax}{});\n",
                comp(n, i)
            );
            probs.push(format!("prob(s{g}{}, st{r}.y)", comp(n, i)));
        }
        c += &format!("        let pl{g} = {}({});\n", ty(n), probs.join(", "));
        let sum = all_reduce(&mut c, &format!("pl{g}"), &format!("sm{g}"), sg, "add");
        for i in 0..n {
            let r = 4 * g + i;
            c += &format!("        l{r} += {sum}{};\n", comp(n, i));
            for t in 0..v.c4 {
                c += &format!("        a{r}_{t} *= st{r}.x;\n");
            }
        }
    }
    // P·V: every lane takes each key's probabilities and adds them times its slice of the V row.
    for key in 0..sg {
        c += &load_slice(&format!("v{key}_"), "v", &format!("kr{key}"), v, dt, false);
        for &(g, n) in &groups {
            c += &format!("        let pb{g}_{key} = subgroupBroadcast(pl{g}, {key}u);\n");
            for i in 0..n {
                let r = 4 * g + i;
                for t in 0..v.c4 {
                    c += &format!(
                        "        a{r}_{t} = fma(vec4<f32>(pb{g}_{key}{}), v{key}_{t}, a{r}_{t});\n",
                        comp(n, i)
                    );
                }
            }
        }
    }
    c
}

/// An xor-butterfly all-reduction of `x` over the SG lanes (`op` "max" or "add"); returns the
/// name of the result, the same bits in every lane.
fn all_reduce(c: &mut String, x: &str, name: &str, sg: u32, op: &str) -> String {
    let mut cur = x.to_string();
    let mut m = 1;
    while m < sg {
        let next = format!("{name}_{m}");
        let other = format!("subgroupShuffleXor({cur}, {m}u)");
        *c += &if op == "max" {
            format!("        let {next} = max({cur}, {other});\n")
        } else {
            format!("        let {next} = {cur} + {other};\n")
        };
        cur = next;
        m *= 2;
    }
    cur
}

/// Each lane writes its slice of every row's output (or partial output), and lane 0 the row's
/// lse or (m, l): all lanes hold the same values.
pub(crate) fn epilogue(r: u32, v: Slice) -> String {
    let dv4 = v.d.div_ceil(4);
    let mut c = String::new();
    for r in 0..r {
        c += &format!(
            "    if (ok{r}) {{\n        let f{r} = out_factor(l{r}, finalize);\n        \
             let dst{r} = select(slot{r}, row{r}, finalize);\n"
        );
        for t in 0..v.c4 {
            let x = format!("a{r}_{t} * f{r}");
            if v.d % 4 == 0 {
                let store = format!(
                    "o[dst{r} * {dv4}u + lane * {}u + {t}u] = guard4({x}, full);",
                    v.c4
                );
                c += &if v.exact {
                    format!("        {store}\n")
                } else {
                    format!(
                        "        if (lane * {}u + {t}u < {dv4}u) {{\n            {store}\n        }}\n",
                        v.c4
                    )
                };
            } else {
                c += &format!("        let ov{r}_{t} = {x};\n");
                for i in 0..4 {
                    let e = format!("lane * {}u + {}u", 4 * v.c4, 4 * t + i);
                    c += &format!(
                        "        if ({e} < {}u) {{\n            \
                         o[dst{r} * {}u + {e}] = guard1(ov{r}_{t}[{i}], full);\n        }}\n",
                        v.d, v.d
                    );
                }
            }
        }
        c += &format!(
            "        if (lane == 0u) {{\n            \
             finish_row(row{r}, slot{r}, m{r}, l{r}, finalize, full);\n        }}\n    }}\n"
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_dim_with_the_widest_load_that_fits() {
        // 128 over 8 lanes: 16 elements each, one 16-element load (16-bit, mode 2) or two of 8.
        assert_eq!(
            slice(8, 128, 16),
            Slice {
                d: 128,
                c4: 4,
                w: 16,
                exact: true
            }
        );
        assert_eq!(slice(8, 128, 8).w, 8);
        // 64 over 8 lanes: 8 elements each, so a 16-element load does not fit the slice.
        assert_eq!(
            slice(8, 64, 16),
            Slice {
                d: 64,
                c4: 2,
                w: 8,
                exact: true
            }
        );
        // 40 over 8 lanes: 10 vec4s in slices of 2, the last three lanes past the end.
        assert_eq!(
            slice(8, 40, 8),
            Slice {
                d: 40,
                c4: 2,
                w: 8,
                exact: false
            }
        );
        // Odd dims are read element by element.
        assert_eq!(
            slice(8, 59, 16),
            Slice {
                d: 59,
                c4: 2,
                w: 1,
                exact: false
            }
        );
        assert_eq!(
            slice(32, 3, 8),
            Slice {
                d: 3,
                c4: 1,
                w: 1,
                exact: false
            }
        );
        assert_eq!(rows(4), 4);
        assert_eq!(rows(3), 4);
        assert_eq!(rows(12), 8);
        assert_eq!(rows(1), 1);
    }
}
