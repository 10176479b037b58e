// Stores of O for the kernels that bind it as words (`o: array<u32>`: merge.wgsl and flash.wgsl)
// and write it in its own dtype (ODT: 0 f32, 1 f16, 2 bf16). Put in front of them by the host,
// after common.wgsl; the rounding comes from round16.wgsl.

// Columns 4t .. 4t+3 of row `row` of O: with ODT, two words of rounded 16-bit values (rows of a
// 16-bit O end on word pairs where this is used: value_dim a multiple of 4, so no other invocation
// writes these words); else the f32 values' bits, those inside the value dim.
fn store_o4(row: u32, t: u32, x: vec4<f32>) {
    if (ODT != 0u) {
        if (4u * t < p.value_dim) {
            let w = (row * p.value_dim + 4u * t) / 2u;
            let words = pack4_16(x, ODT);
            o[w] = words.x;
            o[w + 1u] = words.y;
        }
    } else {
        for (var c = 0u; c < 4u; c++) {
            let e = 4u * t + c;
            if (e < p.value_dim) {
                o[row * p.value_dim + e] = bitcast<u32>(x[c]);
            }
        }
    }
}
