// Shared by the fused kernel's two forms (flash, flash_subgroup): where K and V rows are.
// With PAGED, the KV cache's block table (a dummy otherwise).
@group(0) @binding(9) var<storage, read> block_table: array<u32>;

// Row of key j of (batch b, key/value head kvh) in k and v: contiguous [batch, kv_heads, kv_len,
// dim], or with PAGED a KV cache's pool [blocks, kv_heads, page_size, dim] through the block table
// (kv_cache.rs), so no gathered copy of the cache is needed.
fn kv_row(b: u32, kvh: u32, j: u32) -> u32 {
    if (PAGED != 0u) {
        let blk = block_table[b * p.page_stride + j / p.page_size];
        return (blk * p.kv_heads + kvh) * p.page_size + j % p.page_size;
    }
    return (b * p.kv_heads + kvh) * p.kv_len + j;
}
