// Rounding of f32 results to 16-bit bit patterns, for the kernels that can write a 16-bit O
// (pack.wgsl, merge.wgsl, the fused subgroup form; their key's ODT is the O's dtype): put in front
// of a kernel by the host (pipeline.rs) when its code (store_o.wgsl included) calls `to_bits16` or
// `pack4_16`.
//
// The rounding is done in integer arithmetic on the bit patterns, not with pack2x16float, whose
// rounding mode WGSL leaves to the implementation: so the result is the same correctly rounded
// value on every adapter, and NaN (a kernel's signal that the device broke a promise) stays NaN.

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

// The bits of x in the 16-bit dtype `dt` (1 f16, 2 bf16).
fn to_bits16(x: f32, dt: u32) -> u32 {
    if (dt == 1u) {
        return to_f16(x);
    }
    return to_bf16(x);
}

// Four values as two words (element 4t + 0 in the low half of the first).
fn pack4_16(x: vec4<f32>, dt: u32) -> vec2<u32> {
    return vec2<u32>(
        to_bits16(x.x, dt) | (to_bits16(x.y, dt) << 16u),
        to_bits16(x.z, dt) | (to_bits16(x.w, dt) << 16u)
    );
}
