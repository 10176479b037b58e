//! Host side of `shaders/flash.wgsl`: the fused kernel's specialization and its per-dispatch key
//! budget.

use super::KernelSource;
use crate::pipeline::{Binding, PipelineKey};
use crate::tuning::Tuning;

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::FLASH_WG_WGSL,
    name: "flash",
    source: include_str!("../../shaders/flash.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // q
        Binding::Read,      // k
        Binding::Read,      // v
        Binding::ReadWrite, // o (accumulator between dispatches, then the output)
        Binding::ReadWrite, // ml: running (max, denominator) per row between dispatches
        Binding::ReadWrite, // lse
        Binding::Read,      // mask (dummy when absent)
        Binding::Read,      // key_lengths (dummy when absent)
        Binding::Read,      // block_table of a KV cache (dummy when not PAGED)
    ],
    expand: None,
};

pub(crate) const SUBGROUP_SOURCE: KernelSource = KernelSource {
    // naga 30 enables subgroup builtins through Features::SUBGROUP, not an `enable` directive.
    enable: "",
    prelude: super::FLASH_WGSL,
    name: "flash_subgroup",
    source: include_str!("../../shaders/flash_subgroup.wgsl"),
    entry: "main",
    bindings: SOURCE.bindings,
    expand: Some(expand_subgroup),
};

/// Largest head or value dim the fused kernel is specialised for.
pub const MAX_DIM: usize = 256;

/// One specialization of the fused kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Spec {
    /// 1 for the split-KV decode form (rows of a whole query-head group, partial outputs).
    pub decode: u32,
    pub bq: u32,
    pub bk: u32,
    pub dk: u32,
    pub dv: u32,
}

/// Head dims are rounded up to 4, 8 or 16, then to multiples of 16: every dim from 1 to 256 runs
/// on a kernel at most 15 elements wider than it needs (the tail is zero-padded), and the
/// common dims 32, 64, 80, 96, 128, 256 get an exact kernel.
pub(crate) fn padded_dim(d: usize) -> u32 {
    match d {
        0..=4 => 4,
        5..=8 => 8,
        _ => d.next_multiple_of(16) as u32,
    }
}

pub(crate) fn spec(t: &Tuning, head_dim: usize, value_dim: usize) -> Spec {
    let (dk, dv) = (padded_dim(head_dim), padded_dim(value_dim));
    // K and V tiles together take at most `fused_tile_bytes` of workgroup memory. The default
    // 16 KiB (half the WebGPU minimum, so two workgroups can share a compute unit's 32 KiB) gives
    // 32 keys at dims 64, 16 at 128, 8 at 256.
    let bk = (t.fused_tile_bytes / 4 / (dk + dv)).clamp(4, 32);
    let bk = 1 << (31 - bk.leading_zeros());
    Spec {
        decode: 0,
        bq: t.fused_rows,
        bk,
        dk,
        dv,
    }
}

/// The decode form: `decode_rows` rows per workgroup (a query-head group of a few queries; the
/// tuning row's value, a power of two from 16 to 256), same tiles.
pub(crate) fn decode_spec(t: &Tuning, head_dim: usize, value_dim: usize) -> Spec {
    let bq = t.decode_rows.clamp(16, 256);
    Spec {
        decode: 1,
        bq: 1 << (31 - bq.leading_zeros()),
        ..spec(t, head_dim, value_dim)
    }
}

/// Keys one dispatch covers. Counted conservatively, as if no constant loop were unrolled, a tile
/// costs an invocation BK·(DK/4 + DV/4) inner trips plus its loads; the budget keeps every
/// invocation of a dispatch below 16,384 trips, a quarter of lavapipe's limiter.
pub(crate) fn keys_per_dispatch(s: Spec) -> usize {
    let per_tile = s.bk * (s.dk / 4 + s.dv / 4)
        + (s.bk * s.dk / 4).div_ceil(s.bq)
        + (s.bk * s.dv / 4).div_ceil(s.bq)
        + 2 * s.bk
        + s.dv / 4;
    let tiles = (16_384 / per_tile).max(1);
    (tiles * s.bk) as usize
}

/// Largest generated hot loop of the subgroup form, in broadcast-and-multiply steps per key block
/// (SG keys x (DK/4 + DV/4) vec4s x R rows). Rows per invocation are halved to fit it, and beyond
/// it at one row the workgroup-memory form runs instead (64- or 128-wide subgroups at large head
/// dims). Compile time grows with it: on lavapipe 1,024 steps compile in about 5 s, 2,048 in
/// about 18 s and 4,096 in about 70 s (head dims 64, 128 and 256 at 4 rows; PERFORMANCE.md, log 11).
pub(crate) const SUBGROUP_MAX_STEPS: u32 = 1024;

/// The same cap for the emulated form (`EMU = 1`), whose broadcasts are workgroup-memory reads:
/// llvmpipe compiles each such read into a loop over its lanes, and 960 steps at 32 lanes took
/// 40 s to compile (dims 59 and 63). Half the cap keeps every emulated kernel to a few seconds;
/// the code it checks is the same generator at the same size, on smaller dims.
pub(crate) const EMULATED_MAX_STEPS: u32 = 512;

/// Rows per invocation of the subgroup form for this problem: the tuning row's `fused_sg_rows`
/// rounded down to a power of two, no more than the query rows need (so a short query block does not run empty rows), one where
/// a dim is not a multiple of 4 (its rows are read element by element, which makes the code
/// long and slow to compile), and halved until the generated loop fits `max_steps`
/// ([`SUBGROUP_MAX_STEPS`], or [`EMULATED_MAX_STEPS`] for the emulated form). `None` when even
/// one row does not fit.
pub(crate) fn subgroup_rows(
    t: &Tuning,
    sg: u32,
    head_dim: usize,
    value_dim: usize,
    q_len: usize,
    max_steps: u32,
) -> Option<u32> {
    let steps = sg * (head_dim.div_ceil(4) + value_dim.div_ceil(4)) as u32;
    let mut r = t
        .fused_sg_rows
        .clamp(1, 16)
        .min(q_len.div_ceil(sg as usize).max(1) as u32);
    if head_dim % 4 != 0 || value_dim % 4 != 0 {
        r = 1;
    }
    // Powers of two only, so that query lengths share pipelines.
    r = 1 << (31 - r.leading_zeros());
    while r > 1 && steps * r > max_steps {
        r /= 2;
    }
    (steps * r <= max_steps).then_some(r)
}

/// The subgroup form is specialised for the exact dims (its loads and stores of the dims' tails
/// are decided when the code is generated), not the padded ones of the workgroup form.
/// `mask` is the mask kind (`Params::mask_kind`): the mask's load is compiled in only where a
/// call has one.
/// `wide`: the `W64` mode of [`load_width`]: K and V rows read 8 or 16 elements a load (f32 rows
/// as `vec4<u64>` need SHADER_INT64, and so does mode 2; see `Tuning::fused_wide_loads`).
/// `emulated`: the broadcasts go through workgroup memory instead of subgroup operations, so the
/// code generated for `sg` runs on any adapter (the shader's header says why).
#[allow(clippy::too_many_arguments)]
pub(crate) fn subgroup_key(
    sg: u32,
    r: u32,
    decode: bool,
    head_dim: usize,
    value_dim: usize,
    mask: u32,
    wide: u32,
    emulated: bool,
) -> PipelineKey {
    let wide = if load_width(wide, head_dim as u32) > 4 || load_width(wide, value_dim as u32) > 4 {
        wide
    } else {
        0
    };
    PipelineKey {
        name: SUBGROUP_SOURCE.name,
        constants: vec![
            ("SG", sg),
            ("R", r),
            ("DECODE", decode as u32),
            ("DK", head_dim as u32),
            ("DV", value_dim as u32),
            ("MASK", mask),
            ("W64", wide),
            ("EMU", emulated as u32),
        ],
    }
}

/// Elements per load of a K or V row of dim `d` under the key's `W64` mode: 0 one vec4 (4
/// elements); 1 eight (f32 as `vec4<u64>`, 16-bit as `vec4<u32>`) where `d` is a multiple of 8;
/// 2 (16-bit data on a device with SHADER_INT64) sixteen as `vec4<u64>` where `d` is a multiple
/// of 16, else eight.
pub(crate) fn load_width(mode: u32, d: u32) -> u32 {
    match mode {
        2 if d % 16 == 0 => 16,
        1 | 2 if d % 8 == 0 => 8,
        _ => 4,
    }
}

/// Keys one dispatch of the subgroup form covers: its only loop runs once per block of SG keys,
/// so 2,048 blocks per dispatch keep every invocation far below lavapipe's 65,535-trip limiter.
pub(crate) fn subgroup_keys_per_dispatch(sg: u32) -> usize {
    sg as usize * 2048
}

/// Generates the `//@gen` parts of `shaders/flash_subgroup.wgsl` for its key's SG, R, DK and DV:
/// every per-row and per-element value becomes a named variable and every index a literal (the
/// file's header comment says why).
pub(crate) fn expand_subgroup(source: &str, constants: &[(&'static str, u32)]) -> String {
    let get = |name: &str| {
        constants
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("flash_subgroup needs the constant {name}"))
    };
    let (sg, r, dk, dv) = (get("SG"), get("R"), get("DK"), get("DV"));
    let decode = get("DECODE") != 0;
    let emu = get("EMU") != 0;
    // Elements per load of K and V rows (`load_width`).
    let wide = get("W64");
    let (wk, wv) = (load_width(wide, dk), load_width(wide, dv));
    // The inputs' dtype (0 f32, 1 f16, 2 bf16; absent for f32).
    let dt = constants
        .iter()
        .find(|(n, _)| *n == "DT")
        .map_or(0, |(_, v)| *v);
    // The dtype of O where the kernel writes a 16-bit O itself (ODT: 1 f16, 2 bf16; absent or 0
    // for an f32 O). Only the fused form's single key chunk does (`fused::direct_16bit`): its
    // rows end on word pairs and it never reads O back to accumulate.
    let odt = constants
        .iter()
        .find(|(n, _)| *n == "ODT")
        .map_or(0, |(_, v)| *v);
    assert!(
        odt == 0 || (!decode && dv % 4 == 0),
        "a 16-bit O is written by the fused form with a value dim that is a multiple of 4"
    );
    // Head dims across lanes (decode only, native subgroups only; `flash_lanes`): K and V are
    // declared with the load widths of the lanes' slices.
    let lanes = constants.iter().any(|&(n, v)| n == "DL" && v != 0);
    let (ks, vs) = super::flash_lanes::slices(sg, dk, dv, wide);
    let (wk, wv) = if lanes {
        assert!(
            decode && !emu,
            "the dims-across-lanes form is decode-only and native"
        );
        (ks.w.max(4), vs.w.max(4))
    } else {
        (wk, wv)
    };
    let mut out = String::with_capacity(source.len() + 4096 * r as usize);
    for line in source.lines() {
        let Some(name) = line.trim().strip_prefix("//@gen ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let code = match name.trim() {
            "bindings" => gen_bindings(sg, dk, dv, wk, wv, emu, dt, odt),
            "lane_builtins" if emu => String::new(),
            "lane_builtins" => "    @builtin(subgroup_invocation_id) sli: u32,\n".to_string(),
            "lane_setup" if emu => "    let lane = li;\n    let full = true;\n".to_string(),
            // Both tests are uniform in the subgroup; subgroupMax(sli) == SG - 1 with SG lanes
            // active means the lanes are exactly 0..SG-1.
            "lane_setup" => "    let lane = sli;\n    \
                             let full = subgroupAdd(1u) == SG && subgroupMax(sli) == SG - 1u;\n"
                .to_string(),
            "prologue" if lanes => super::flash_lanes::prologue(sg, r, ks, vs, dt),
            "block" if lanes => super::flash_lanes::block(sg, r, ks, vs, dt),
            "epilogue" if lanes => super::flash_lanes::epilogue(r, vs),
            "prologue" => gen_prologue(sg, r, dk, dv, decode, dt, odt),
            "block" => gen_block(sg, r, dk, dv, wk, wv, emu, dt),
            "epilogue" => gen_epilogue(r, dv, odt),
            other => panic!("flash_subgroup.wgsl: unknown generated part {other}"),
        };
        out.push_str(&code);
    }
    out
}

/// Q, K, V and O as rows of vec4 when their dim is a multiple of 4 (one load or store per 4
/// elements), else as scalars; K and V (`wk`, `wv`) as rows of `vec4<u64>` (8 floats per load)
/// where asked, with the helpers that unpack them. 16-bit inputs (`dt` 1 or 2): a vec4 is a pair
/// of words (`vec2<u32>`), a wide load four words (`vec4<u32>`, 8 elements), and scalar rows are
/// read through the `//@input` accessors. O is f32 whatever the inputs are, or with `odt` (1 f16,
/// 2 bf16) a 16-bit O, each vec4 of a row stored as a pair of words.
#[allow(clippy::too_many_arguments)]
fn gen_bindings(
    sg: u32,
    dk: u32,
    dv: u32,
    wk: u32,
    wv: u32,
    emu: bool,
    dt: u32,
    odt: u32,
) -> String {
    let mut c = String::new();
    for (name, binding, d, w) in [("q", 1, dk, 4), ("k", 2, dk, wk), ("v", 3, dv, wv)] {
        let ty = match (d % 4 == 0, w, dt) {
            (false, _, _) => {
                // Scalar rows: the generated accessors, in any dtype.
                c += &format!("//@input {name} {binding} DT\n");
                continue;
            }
            (true, 4, 0) => "vec4<f32>",
            (true, _, 0) => "vec4<u64>",
            (true, 4, _) => "vec2<u32>",
            (true, 8, _) => "vec4<u32>",
            (true, _, _) => "vec4<u64>",
        };
        c += &format!("@group(0) @binding({binding}) var<storage, read> {name}: array<{ty}>;\n");
    }
    let oty = match (dv % 4 == 0, odt) {
        (true, 0) => "vec4<f32>",
        (true, _) => "vec2<u32>",
        (false, _) => "f32",
    };
    c += &format!("@group(0) @binding(4) var<storage, read_write> o: array<{oty}>;\n");
    if emu {
        // The emulated broadcasts' exchange: every lane's K and V row of the current block.
        c += &format!(
            "var<workgroup> xk: array<vec4<f32>, {}>;\nvar<workgroup> xv: array<vec4<f32>, {}>;\n",
            sg * dk.div_ceil(4),
            sg * dv.div_ceil(4)
        );
    }
    if (wk == 16 || wv == 16) && dt != 0 {
        // The two words of a u64 (four 16-bit elements), the lower-addressed one first.
        c += "fn u64_words(w: u64) -> vec2<u32> {\n    \
              return vec2<u32>(u32(w & 0xFFFFFFFFlu), u32(w >> 32u));\n}\n";
    }
    if (wk > 4 || wv > 4) && dt == 0 {
        // Floats 0..3 and 4..7 of a vec4<u64>: each u64 holds two f32, the lower-addressed one in
        // its low word (storage is little-endian in every backend wgpu targets).
        for (name, xy) in [("wide_lo", "xy"), ("wide_hi", "zw")] {
            c += &format!(
                "fn {name}(w: vec4<u64>) -> vec4<f32> {{\n    \
                 let lo = vec2<u32>(w.{xy} & vec2<u64>(0xFFFFFFFFlu));\n    \
                 let hi = vec2<u32>(w.{xy} >> vec2<u32>(32u));\n    \
                 return bitcast<vec4<f32>>(vec4<u32>(lo.x, hi.x, lo.y, hi.y));\n}}\n"
            );
        }
    }
    c
}

/// The function that unpacks four 16-bit elements from a pair of words.
pub(crate) fn unpack4(dt: u32) -> &'static str {
    if dt == 1 {
        "unpack4_f16"
    } else {
        "unpack4_bf16"
    }
}

/// The statements that define `{x}x{t}` (elements 4t..4t+3 of row `row` of `buf`) in the hot
/// loop. A wide row defines two at once, at even t, from one `vec4<u64>` load (four words for
/// 16-bit data); odd t then needs nothing.
fn load_vec4(x: &str, buf: &str, row: &str, d: u32, t: u32, width: u32, dt: u32) -> String {
    if width == 4 {
        return format!("        let {x}x{t} = {};\n", row_vec4(buf, row, d, t, dt));
    }
    if width == 16 {
        // 16-bit data, 16 elements a load: four vec4s from one vec4<u64>, at t a multiple of 4.
        if t % 4 != 0 {
            return String::new();
        }
        let mut c = format!(
            "        let {x}w{t} = {buf}[{row} * {}u + {}u];\n",
            d / 16,
            t / 4
        );
        for (i, comp) in ["x", "y", "z", "w"].iter().enumerate() {
            c += &format!(
                "        let {x}x{} = {}(u64_words({x}w{t}.{comp}));\n",
                t + i as u32,
                unpack4(dt)
            );
        }
        return c;
    }
    if t % 2 == 1 {
        return String::new();
    }
    let (lo, hi) = wide_halves(&format!("{x}w{t}"), dt);
    format!(
        "        let {x}w{t} = {buf}[{row} * {}u + {}u];\n        \
         let {x}x{t} = {lo};\n        let {x}x{} = {hi};\n",
        d / 8,
        t / 2,
        t + 1
    )
}

/// The two vec4s of an 8-element load `w` (a `vec4<u64>` of f32, or four words of 16-bit data).
pub(crate) fn wide_halves(w: &str, dt: u32) -> (String, String) {
    if dt == 0 {
        (format!("wide_lo({w})"), format!("wide_hi({w})"))
    } else {
        (
            format!("{}({w}.xy)", unpack4(dt)),
            format!("{}({w}.zw)", unpack4(dt)),
        )
    }
}

/// Elements 4t..4t+3 of row `row` of `buf` (a dim of `d`, dtype `dt`; `o` is always f32): one
/// vec4 load, or the scalars that exist with zeros past the dim (decided here, so no bounds test
/// runs in the loop).
fn row_vec4(buf: &str, row: &str, d: u32, t: u32, dt: u32) -> String {
    if d % 4 == 0 {
        let load = format!("{buf}[{row} * {}u + {t}u]", d / 4);
        return if dt == 0 || buf == "o" {
            load
        } else {
            format!("{}({load})", unpack4(dt))
        };
    }
    let parts: Vec<String> = (0..4)
        .map(|c| {
            let e = 4 * t + c;
            if e >= d {
                "0.0".to_string()
            } else if buf == "o" {
                format!("{buf}[{row} * {d}u + {e}u]")
            } else {
                format!("{buf}_1({row} * {d}u + {e}u)")
            }
        })
        .collect();
    format!("vec4<f32>({})", parts.join(", "))
}

/// Stores `x` as elements 4t..4t+3 of row `row` of `o` (a dim of `d`): one vec4 store, or the
/// scalars that exist.
/// The value passes through `guard4`/`guard1`, which write NaN instead where the workgroup was
/// not one full subgroup (the shader's header says why).
/// With `odt` (a 16-bit O; `d` a multiple of 4) the vec4 is rounded and stored as two words.
fn store_row_vec4(row: &str, d: u32, t: u32, x: &str, odt: u32) -> String {
    if d % 4 == 0 && odt != 0 {
        return format!(
            "        o[{row} * {}u + {t}u] = pack4_16(guard4({x}, full), {odt}u);\n",
            d / 4
        );
    }
    if d % 4 == 0 {
        return format!(
            "        o[{row} * {}u + {t}u] = guard4({x}, full);\n",
            d / 4
        );
    }
    (0..4)
        .filter(|c| 4 * t + c < d)
        .map(|c| {
            format!(
                "        o[{row} * {d}u + {}u] = guard1(({x})[{c}], full);\n",
                4 * t + c
            )
        })
        .collect()
}

/// With `odt` (a 16-bit O, written by a single key chunk) nothing is read back to accumulate.
fn gen_prologue(sg: u32, r: u32, dk: u32, dv: u32, decode: bool, dt: u32, odt: u32) -> String {
    let (dk4, dv4) = (dk.div_ceil(4), dv.div_ceil(4));
    let mut c = String::new();
    for r in 0..r {
        // Rows past the end read the last row (in bounds) and are never written.
        if decode {
            c += &format!(
                "    let n{r} = wid.x * SG * R + {}u + li;\n    \
                 let ok{r} = n{r} < p.group * p.q_len;\n    \
                 let nn{r} = min(n{r}, p.group * p.q_len - 1u);\n    \
                 let h{r} = kvh * p.group + nn{r} / p.q_len;\n    \
                 let i{r} = nn{r} % p.q_len;\n    \
                 let row{r} = (b * p.q_heads + h{r}) * p.q_len + i{r};\n    \
                 let slot{r} = row{r} * p.nseg + wid.z;\n",
                r * sg
            );
        } else {
            c += &format!(
                "    let h{r} = h;\n    let i{r} = i_base + {}u + li;\n    \
                 let ok{r} = i{r} < p.q_len;\n    \
                 let row{r} = (b * p.q_heads + h) * p.q_len + min(i{r}, p.q_len - 1u);\n    \
                 let slot{r} = row{r};\n",
                r * sg
            );
        }
        for t in 0..dk4 {
            c += &format!(
                "    let q{r}_{t} = {} * p.scale;\n",
                row_vec4("q", &format!("row{r}"), dk, t, dt)
            );
        }
        c += &format!("    var m{r} = MASKED;\n    var l{r} = 0.0;\n");
        for t in 0..dv4 {
            c += &format!("    var a{r}_{t} = vec4<f32>(0.0);\n");
        }
        if odt != 0 {
            continue;
        }
        c += &format!(
            "    if (accumulate && ok{r}) {{\n        let st = ml[row{r}];\n        \
             m{r} = st.x;\n        l{r} = st.y;\n"
        );
        for t in 0..dv4 {
            c += &format!(
                "        a{r}_{t} = {};\n",
                row_vec4("o", &format!("row{r}"), dv, t, 0)
            );
        }
        c += "    }\n";
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn gen_block(sg: u32, r: u32, dk: u32, dv: u32, wk: u32, wv: u32, emu: bool, dt: u32) -> String {
    let (dk4, dv4) = (dk.div_ceil(4), dv.div_ceil(4));
    let share = |x: &str, t: u32, l: u32| {
        if emu {
            format!("        let {x}{t}_{l} = x{x}[{}u];\n", t * sg + l)
        } else {
            format!("        let {x}{t}_{l} = subgroupBroadcast({x}x{t}, {l}u);\n")
        }
    };
    let mut c = String::new();
    if emu {
        // Emulated: every lane stores its key's K and V rows, then everyone reads them.
        for (x, d, w, d4) in [("k", dk, wk, dk4), ("v", dv, wv, dv4)] {
            for t in 0..d4 {
                c += &load_vec4(x, x, "kr", d, t, w, dt);
                c += &format!("        x{x}[{}u + li] = {x}x{t};\n", t * sg);
            }
        }
        c += "        workgroupBarrier();\n";
    }
    // Q·Kᵀ: each vec4 of this invocation's key row is loaded once (and broadcast); each serves
    // R rows.
    for t in 0..dk4 {
        if !emu {
            c += &load_vec4("k", "k", "kr", dk, t, wk, dt);
        }
        for l in 0..sg {
            c += &share("k", t, l);
            for r in 0..r {
                if t == 0 {
                    c += &format!("        var s{r}_{l} = dot(q{r}_0, k0_{l});\n");
                } else {
                    c += &format!("        s{r}_{l} += dot(q{r}_{t}, k{t}_{l});\n");
                }
            }
        }
    }
    // Masks and the online-softmax update of each row.
    for r in 0..r {
        let mut scores = Vec::new();
        for l in 0..sg {
            c += &format!(
                "        s{r}_{l} = masked_score(s{r}_{l}, b, h{r}, i{r}, jb + {l}u, j_stop);\n"
            );
            scores.push(format!("s{r}_{l}"));
        }
        let tmax = balanced(&scores, &|a, b| format!("max({a}, {b})"));
        c += &format!("        let st{r} = online_step(&m{r}, &l{r}, {tmax});\n");
        let mut probs = Vec::new();
        for l in 0..sg {
            c += &format!("        let p{r}_{l} = prob(s{r}_{l}, st{r}.y);\n");
            probs.push(format!("p{r}_{l}"));
        }
        let sum = balanced(&probs, &|a, b| format!("({a} + {b})"));
        c += &format!("        l{r} += {sum};\n");
        for t in 0..dv4 {
            c += &format!("        a{r}_{t} *= st{r}.x;\n");
        }
    }
    // P·V, the same way as Q·Kᵀ.
    for t in 0..dv4 {
        if !emu {
            c += &load_vec4("v", "v", "kr", dv, t, wv, dt);
        }
        for l in 0..sg {
            c += &share("v", t, l);
            for r in 0..r {
                c += &format!("        a{r}_{t} = fma(vec4<f32>(p{r}_{l}), v{t}_{l}, a{r}_{t});\n");
            }
        }
    }
    if emu {
        // The next block overwrites the exchange only after everyone has read this one.
        c += "        workgroupBarrier();\n";
    }
    c
}

/// `terms` combined by `op` as a balanced tree, `log2(n)` deep. A left-nested chain of 128
/// terms (a 128-lane block's max and sum) took lavapipe 36–43 s to compile; balanced, it does
/// not grow with depth.
fn balanced(terms: &[String], op: &dyn Fn(&str, &str) -> String) -> String {
    match terms {
        [] => "0.0".into(),
        [one] => one.clone(),
        _ => {
            let (a, b) = terms.split_at(terms.len() / 2);
            op(&balanced(a, op), &balanced(b, op))
        }
    }
}

fn gen_epilogue(r: u32, dv: u32, odt: u32) -> String {
    let dv4 = dv.div_ceil(4);
    let mut c = String::new();
    for r in 0..r {
        c += &format!(
            "    if (ok{r}) {{\n        let f{r} = out_factor(l{r}, finalize);\n        \
             let dst{r} = select(slot{r}, row{r}, finalize);\n"
        );
        for t in 0..dv4 {
            c += &store_row_vec4(&format!("dst{r}"), dv, t, &format!("a{r}_{t} * f{r}"), odt);
        }
        c += &format!("        finish_row(row{r}, slot{r}, m{r}, l{r}, finalize, full);\n    }}\n");
    }
    c
}

pub(crate) fn key(s: Spec) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![
            ("BQ", s.bq),
            ("BK", s.bk),
            ("DK", s.dk),
            ("DV", s.dv),
            ("DECODE", s.decode),
        ],
    }
}
