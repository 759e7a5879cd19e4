//! Weight standardisation on flex (Qiao et al., arXiv 1903.10520; spec `ws.md` §2.1–§2.2): each
//! output channel's kernel `w` (one row of `fan_in` values) becomes `(w − mean) / σ`.
//!
//! Forward: the row's mean, then its centred sum of squares (two passes, as PyTorch), `σ` as the
//! variant defines it, one pass writing the output. Backward, from `S = Σ g·(w − mean)` and
//! `G = Σ g`: `dw = g/σ + k·(w − mean) − mean(g/σ + k·(w − mean))` with
//! `k = −S/σ² · dσ/dvar · 2/divisor`, one more pass.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{
    Real, contiguous, dims, elements, from_vec,
    norm::{centred_dot, centred_sum_of_squares, sum},
    with_real, written,
};
use crate::{Standardization, VAR_FLOOR};

/// What the forward hands its backward.
pub struct StandardizeForward {
    /// The standardised weight, the input's shape.
    pub output: FlexTensor,
    /// `[O, 3]`: each row's mean, `1/σ` and `dσ/dvar`.
    pub stats: FlexTensor,
}

/// `σ` of a row of biased or unbiased variance `var`, and `dσ/dvar`: `sqrt(var + eps)`, or
/// `sqrt(max(var, VAR_FLOOR)) + eps` whose derivative is 0 below the floor (a constant kernel).
fn sigma<T: Real>(var: T, ws: Standardization) -> (T, T) {
    let eps = T::of(ws.eps);
    let half = T::of(0.5);
    if ws.eps_inside_root {
        let sigma = (var + eps).sqrt();
        (sigma, half / sigma)
    } else if var > T::of(VAR_FLOOR) {
        let root = var.sqrt();
        (root + eps, half / root)
    } else {
        (T::of(VAR_FLOOR).sqrt() + eps, T::ZERO)
    }
}

fn divisor(fan_in: usize, ws: Standardization) -> usize {
    if ws.unbiased { fan_in - 1 } else { fan_in }
}

/// [`crate::standardize_weight`] of `weight [O, I, kH, kW]` (F32 or F64).
pub fn forward(weight: &FlexTensor, ws: Standardization) -> StandardizeForward {
    let shape = dims::<4>(weight);
    let [rows, fan_in] = [shape[0], shape[1] * shape[2] * shape[3]];
    let weight = contiguous(weight);
    with_real!(weight.dtype(), T => {
        let w = elements::<T>(&weight);
        let mut stats = vec![T::ZERO; rows * 3];
        let count = T::count(fan_in);
        let divide_by = T::count(divisor(fan_in, ws));
        // SAFETY: the rows cover the output, each written whole.
        let output = unsafe {
            written(w.len(), |out| {
                out.par_chunks_mut(fan_in)
                    .zip(w.par_chunks(fan_in))
                    .zip(stats.par_chunks_mut(3))
                    .for_each(|((out, row), stats)| {
                        let mean = sum(row) / count;
                        let var = centred_sum_of_squares(row, mean) / divide_by;
                        let (sigma, slope) = sigma(var, ws);
                        let inv = T::ONE / sigma;
                        for (o, &v) in out.iter_mut().zip(row) {
                            o.write((v - mean) * inv);
                        }
                        stats.copy_from_slice(&[mean, inv, slope]);
                    })
            })
        };
        StandardizeForward {
            output: from_vec(output, &shape),
            stats: from_vec(stats, &[rows, 3]),
        }
    })
}

/// The weight's gradient given the output's, `grad`, and the forward's `stats`.
pub fn backward(
    weight: &FlexTensor,
    stats: &FlexTensor,
    grad: &FlexTensor,
    ws: Standardization,
) -> FlexTensor {
    let shape = dims::<4>(weight);
    let fan_in = shape[1] * shape[2] * shape[3];
    let [weight, stats, grad] = [weight, stats, grad].map(contiguous);
    with_real!(weight.dtype(), T => {
        let (w, g, stats) = (elements::<T>(&weight), elements::<T>(&grad), elements::<T>(&stats));
        let count = T::count(fan_in);
        let two_over_divisor = T::of(2.0) / T::count(divisor(fan_in, ws));
        // SAFETY: the rows cover the gradient, each written whole.
        let dw = unsafe {
            written(w.len(), |dw| {
                dw.par_chunks_mut(fan_in)
                    .zip(w.par_chunks(fan_in).zip(g.par_chunks(fan_in)))
                    .zip(stats.par_chunks(3))
                    .for_each(|((dw, (row, g)), stats)| {
                        let [mean, inv, slope] = [stats[0], stats[1], stats[2]];
                        let k = -centred_dot(g, row, mean) * inv * inv * slope * two_over_divisor;
                        // Σ(w − mean): zero but for rounding, kept so the result is the chain rule's.
                        let centred_total = sum(row) - mean * count;
                        let shift = -(inv * sum(g) + k * centred_total) / count;
                        for ((d, &gi), &v) in dw.iter_mut().zip(g).zip(row) {
                            d.write(inv * gi + k * (v - mean) + shift);
                        }
                    })
            })
        };
        from_vec(dw, &shape)
    })
}
