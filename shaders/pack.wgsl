// Writes a 16-bit output: the f32 results of the attention kernels (which accumulate in f32)
// rounded to the nearest f16 or bf16, ties to even, packed two to a word.
//
// One invocation per 32-bit word of the destination, so no two invocations write one word (a
// 16-bit store is a read-modify-write of its word). With an odd element count the last word's
// upper half is not the tensor's: it is read and written back unchanged.
//
// The rounding is done in integer arithmetic on the bit patterns, not with pack2x16float, whose
// rounding mode WGSL leaves to the implementation: so the result is the same correctly rounded
// value on every adapter, and NaN (a kernel's signal that the device broke a promise) stays NaN.
//
// Specialization constants (header): WG, DT (1 f16, 2 bf16).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// f32 to f16 bits, round to nearest even; beyond f16's range the result is ±inf.
fn to_f16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u; // NaN
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u; // 65520 and up round to infinity
    }
    if (a >= 0x38800000u) {
        // Normal in f16 (2^-14 and up): rebias the exponent (127 - 15 = 112), round away 13 bits.
        let r = a - 0x38000000u;
        return sign | ((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u);
    }
    if (a < 0x33000000u) {
        return sign; // below 2^-25: rounds to zero
    }
    // Subnormal in f16: the value is m · 2^(e - 150) = h · 2^-24, so h = m >> (126 - e), rounded.
    let e = a >> 23u;
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let half = 1u << (shift - 1u);
    let rem = m & ((1u << shift) - 1u);
    var h = m >> shift;
    if (rem > half || (rem == half && (h & 1u) == 1u)) {
        h += 1u;
    }
    return sign | h;
}

// f32 to bf16 bits (the upper half of the f32), round to nearest even.
fn to_bf16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (b >> 16u) | 0x40u; // NaN, kept quiet
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

fn to_bits(x: f32) -> u32 {
    if (DT == 1u) {
        return to_f16(x);
    }
    return to_bf16(x);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let w = gid.x + gid.y * nwg.x * WG;
    let e = 2u * w;
    if (e >= p.count) {
        return;
    }
    let lo = to_bits(src[e]);
    var hi: u32;
    if (e + 1u < p.count) {
        hi = to_bits(src[e + 1u]);
    } else {
        hi = dst[w] >> 16u;
    }
    dst[w] = lo | (hi << 16u);
}
