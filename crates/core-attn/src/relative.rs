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

/// `[L·L]` gather indices, row-major over (query i, key j), for a length-`len` axis. Pairs farther
/// apart than the table reaches (only under a local span, where they are masked out) read its
/// last column.
pub fn index_table<B: Backend>(
    len: usize,
    span: usize,
    query_minus_key: bool,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let last = 2 * span as i64 - 2;
    let indices: Vec<i64> = (0..len * len)
        .map(|p| relative_index(p / len, p % len, span, query_minus_key).clamp(0, last))
        .collect();
    Tensor::from_data(TensorData::new(indices, [len * len]), device)
}

/// `E[c, i, j] = table[c, index(i, j)]`: `[D, 2K-1] -> [D, L, L]`.
pub fn embeddings<B: Backend>(
    table: Tensor<B, 2>,
    index: Tensor<B, 1, Int>,
    len: usize,
) -> Tensor<B, 3> {
    let depth = table.dims()[0];
    table.select(1, index).reshape([depth, len, len])
}

/// `out[b, g, i, j] = Σ_c x[b, g, c, i] · E[c, i, j]`: the positional logits `qr` (x = q) and,
/// transposed, `kr` (x = k).
pub fn positional_logits<B: Backend>(x: Tensor<B, 4>, emb: Tensor<B, 3>) -> Tensor<B, 4> {
    let [b, g, d, l] = x.dims();
    // One matmul per query position i: [L, B·G, d] × [L, d, L].
    let per_position = x.reshape([b * g, d, l]).permute([2, 0, 1]); // [L, B·G, d]
    let table = emb.permute([1, 0, 2]); // [L(i), d, L(j)]
    per_position
        .matmul(table) // [L(i), B·G, L(j)]
        .permute([1, 0, 2])
        .reshape([b, g, l, l])
}

/// `out[b, g, c, i] = Σ_j A[b, g, i, j] · E[c, i, j]`: the positional values `sve`.
pub fn positional_values<B: Backend>(attention: Tensor<B, 4>, emb: Tensor<B, 3>) -> Tensor<B, 4> {
    let [b, g, l, _] = attention.dims();
    let d = emb.dims()[0];
    let per_position = attention.reshape([b * g, l, l]).permute([1, 0, 2]); // [L(i), B·G, L(j)]
    let table = emb.permute([1, 2, 0]); // [L(i), L(j), d]
    per_position
        .matmul(table) // [L(i), B·G, d]
        .permute([1, 2, 0]) // [B·G, d, L(i)]
        .reshape([b, g, d, l])
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
