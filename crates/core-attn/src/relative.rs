//! Relative positional encodings of axial attention (`axial-deeplab.md` §2.1, §2.2, §8.1): which
//! column of the table a (query, key) pair reads, and the two contractions that use them.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

/// The sign convention of the offsets (`axial-deeplab.md` §2.2, pitfall 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpeConvention {
    /// The PyTorch repository (AXPT, the released `axial26s.pth`): r^q and r^v indexed by
    /// query − key, r^k by key − query.
    #[default]
    Axpt,
    /// DeepLab2: all three indexed by key − query. Equivalent to AXPT with r^q and r^v reversed
    /// along the offset axis.
    Dl2,
}

/// Column of a `[·, 2K - 1]` table for query `i` and key `j`, `query_minus_key` choosing the sign:
/// `i - j + K - 1` or `j - i + K - 1` (`axial-deeplab.md` §8.1); outside `0..2K-1` when
/// `|i - j| ≥ K`.
pub fn relative_index(i: usize, j: usize, span: usize, query_minus_key: bool) -> i64 {
    let (i, j) = (i as i64, j as i64);
    let offset = if query_minus_key { i - j } else { j - i };
    offset + span as i64 - 1
}

/// `[L·L]` indices into a row-major `[L, 2L − 1]` matrix of per-position logits (one column per
/// offset of a length-`len` axis), in (query i, key j) order: row `i` (or `j` when `row_is_key`),
/// column = the offset's column (`relative_index` with span `len`).
pub fn flat_index_table<B: Backend>(
    len: usize,
    query_minus_key: bool,
    row_is_key: bool,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let width = 2 * len as i64 - 1;
    let indices: Vec<i64> = (0..len * len)
        .map(|p| {
            let (i, j) = (p / len, p % len);
            let column = relative_index(i, j, len, query_minus_key);
            let row = if row_is_key { j } else { i } as i64;
            row * width + column
        })
        .collect();
    Tensor::from_data(TensorData::new(indices, [len * len]), device)
}

/// `out[b, i, j] = Σ_c x[b, c, r] · table[c, t(i, j)]` with `r = i` (qr) or `r = j` (kr), as
/// `(xᵀ · table)` — every position against every offset, one matmul — read at `flat_index`
/// ([`flat_index_table`]): `[B, d, L]`, `[d, T]` → `[B, L, L]`. Never materialises the `[d, L, L]`
/// embeddings or permutes an `L × L` tensor.
pub fn relative_logits<B: Backend>(
    x: Tensor<B, 3>,
    table: Tensor<B, 2>,
    flat_index: Tensor<B, 1, Int>,
) -> Tensor<B, 3> {
    let [b, d, l] = x.dims();
    let t = table.dims()[1];
    let per_offset = x.swap_dims(1, 2).matmul(table.reshape([1, d, t])); // [B, L, T]
    per_offset
        .reshape([b, l * t])
        .select(1, flat_index)
        .reshape([b, l, l])
}

/// `out[b, i, c] = Σ_j A[b, i, j] · table[c, t(i, j)]`: the attention scattered onto the offsets
/// of each query (each (i, j) has its own (i, t)), then one matmul with the table:
/// `[B, L, L]`, `[d, T]` → `[B, L, d]` (the positional values `sve`, position-major).
pub fn relative_values<B: Backend>(
    attention: Tensor<B, 3>,
    table: Tensor<B, 2>,
    flat_index: Tensor<B, 1, Int>,
) -> Tensor<B, 3> {
    let [b, l, _] = attention.dims();
    let [d, t] = table.dims();
    let per_offset = Tensor::<B, 2>::zeros([b, l * t], &attention.device()).select_assign(
        1,
        flat_index,
        attention.reshape([b, l * l]),
        burn::tensor::IndexingUpdateOp::Add,
    );
    per_offset
        .reshape([b, l, t])
        .matmul(table.swap_dims(0, 1).reshape([1, t, d]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_tables_follow_the_spec() {
        // axial-deeplab.md §8.1, K = 3.
        let table = |qmk| {
            (0..3)
                .map(|i| {
                    (0..3)
                        .map(|j| relative_index(i, j, 3, qmk))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(table(true), [[2, 1, 0], [3, 2, 1], [4, 3, 2]]);
        assert_eq!(table(false), [[2, 3, 4], [1, 2, 3], [0, 1, 2]]);
        // A shorter axis than the span reads the centre of the table.
        assert_eq!(relative_index(0, 1, 5, true), 3);
    }
}
