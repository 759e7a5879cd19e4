//! Group and batch normalisation on flex in a few passes over memory.
//!
//! Forward: the statistics of a slab (a sample's channel group, or a channel across the batch)
//! from two passes over it — the mean, then the centred sum of squares, as PyTorch — and one
//! normalise+affine pass, `y = a·x + b` with `a = γ·rstd`, `b = β − mean·a` per channel.
//! Backward: `Σdy` and `Σdy·(x − mean)` per (sample, channel) in one pass, then
//! `dx = a·dy + b·x + d` in one more, with per-slab coefficients from
//! `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))`, `g = γ·dy`, `x̂ = (x − mean)·rstd`.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::{Real, contiguous, dims, elements, from_vec, with_real, written};

/// Lanes of independent accumulators: enough for the compiler to keep a SIMD register busy.
const LANES: usize = 8;

/// `Σ xs`.
pub fn sum<T: Real>(xs: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(T::ZERO, |s, &v| s + v);
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.into_iter().fold(rest, |s, a| s + a)
}

/// `Σ (xs − centre)²`.
pub fn centred_sum_of_squares<T: Real>(xs: &[T], centre: T) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(T::ZERO, |s, &v| {
        let d = v - centre;
        s + d * d
    });
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            let d = v - centre;
            *a += d * d;
        }
    }
    acc.into_iter().fold(rest, |s, a| s + a)
}

/// `Σ dy·(x − centre)`.
pub fn centred_dot<T: Real>(dy: &[T], x: &[T], centre: T) -> T {
    let mut acc = [T::ZERO; LANES];
    let (dc, xc) = (dy.chunks_exact(LANES), x.chunks_exact(LANES));
    let rest = dc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .fold(T::ZERO, |s, (&g, &v)| s + g * (v - centre));
    for (gs, vs) in dc.zip(xc) {
        for ((a, &g), &v) in acc.iter_mut().zip(gs).zip(vs) {
            *a += g * (v - centre);
        }
    }
    acc.into_iter().fold(rest, |s, a| s + a)
}

/// `out = a·x + b`.
fn affine<T: Real>(out: &mut [MaybeUninit<T>], x: &[T], a: T, b: T) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(a * v + b);
    }
}

/// `out = a·dy + b·x + d`.
fn affine2<T: Real>(out: &mut [MaybeUninit<T>], dy: &[T], x: &[T], a: T, b: T, d: T) {
    for ((o, &g), &v) in out.iter_mut().zip(dy).zip(x) {
        o.write(a * g + b * v + d);
    }
}

/// `(mean, rstd)` of a slab of `count` values: two passes, biased variance, `1/sqrt(var + eps)`.
fn moments<T: Real>(xs: &[T], eps: T) -> (T, T, T) {
    let count = T::count(xs.len());
    let mean = sum(xs) / count;
    let var = centred_sum_of_squares(xs, mean) / count;
    (mean, var, T::ONE / (var + eps).sqrt())
}

/// What the group-norm forward hands its backward.
pub struct GroupNormForward {
    /// `[N, C, H, W]`
    pub output: FlexTensor,
    /// `[N·G]`
    pub mean: FlexTensor,
    /// `[N·G]`: `1/sqrt(var + eps)`.
    pub rstd: FlexTensor,
}

/// Gradients of a normalisation with a per-channel affine.
pub struct NormGrads {
    pub x: FlexTensor,
    pub weight: FlexTensor,
    pub bias: FlexTensor,
}

/// Group normalisation of `x [N, C, H, W]` with `weight`, `bias [C]` (one dtype, F32 or F64).
pub fn group_norm_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    groups: usize,
    eps: f64,
) -> GroupNormForward {
    let [n, c, h, w] = dims::<4>(x);
    assert!(
        groups > 0 && c.is_multiple_of(groups),
        "group_norm: {c} channels are not divisible into {groups} groups"
    );
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    with_real!(x.dtype(), T => {
        let (y, mean, rstd) = group_norm_slices::<T>(
            elements(&x), elements(&weight), elements(&bias), [n, c, h * w], groups, T::of(eps),
        );
        GroupNormForward {
            output: from_vec(y, &[n, c, h, w]),
            mean: from_vec(mean, &[n * groups]),
            rstd: from_vec(rstd, &[n * groups]),
        }
    })
}

fn group_norm_slices<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    [n, c, hw]: [usize; 3],
    groups: usize,
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let per_group = c / groups;
    let len = per_group * hw;
    let mut mean = vec![T::ZERO; n * groups];
    let mut rstd = vec![T::ZERO; n * groups];
    if len == 0 {
        return (vec![T::ZERO; x.len()], mean, rstd);
    }
    // SAFETY: the slabs cover `y`, and each slab's channels are written whole.
    let y = unsafe {
        written(x.len(), |y| {
            y.par_chunks_mut(len)
                .zip(x.par_chunks(len))
                .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
                .enumerate()
                .for_each(|(slab, ((ys, xs), (m, r)))| {
                    let (mu, _, inv) = moments(xs, eps);
                    (*m, *r) = (mu, inv);
                    let first = (slab % groups) * per_group;
                    for (k, (yc, xc)) in ys.chunks_mut(hw).zip(xs.chunks(hw)).enumerate() {
                        let a = gamma[first + k] * inv;
                        affine(yc, xc, a, beta[first + k] - mu * a);
                    }
                });
        })
    };
    (y, mean, rstd)
}

fn group_norm_backward_slices<T: Real>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    [n, c, hw]: [usize; 3],
    groups: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let per_group = c / groups;
    let len = per_group * hw;
    // Per (sample, channel): Σdy and Σdy·(x − mean of its group).
    let mut s1 = vec![T::ZERO; n * c];
    let mut s2 = vec![T::ZERO; n * c];
    if len == 0 {
        return (vec![T::ZERO; x.len()], vec![T::ZERO; c], vec![T::ZERO; c]);
    }
    // SAFETY: the slabs cover `dx`, and each slab's channels are written whole.
    let dx = unsafe {
        written(x.len(), |dx| {
            dx.par_chunks_mut(len)
                .zip(x.par_chunks(len).zip(dy.par_chunks(len)))
                .zip(
                    s1.par_chunks_mut(per_group)
                        .zip(s2.par_chunks_mut(per_group)),
                )
                .enumerate()
                .for_each(|(slab, ((dxs, (xs, dys)), (s1, s2)))| {
                    let (mu, inv) = (mean[slab], rstd[slab]);
                    let first = (slab % groups) * per_group;
                    let (mut g_sum, mut gx_sum) = (T::ZERO, T::ZERO);
                    for k in 0..per_group {
                        let (xc, dc) = (&xs[k * hw..(k + 1) * hw], &dys[k * hw..(k + 1) * hw]);
                        s1[k] = sum(dc);
                        s2[k] = centred_dot(dc, xc, mu);
                        g_sum += gamma[first + k] * s1[k];
                        gx_sum += gamma[first + k] * s2[k];
                    }
                    let count = T::count(len);
                    let b = -(inv * inv * inv) * gx_sum / count;
                    let d = -inv * g_sum / count - b * mu;
                    for k in 0..per_group {
                        let range = k * hw..(k + 1) * hw;
                        let a = gamma[first + k] * inv;
                        affine2(
                            &mut dxs[range.clone()],
                            &dys[range.clone()],
                            &xs[range],
                            a,
                            b,
                            d,
                        );
                    }
                });
        })
    };
    let mut dgamma = vec![T::ZERO; c];
    let mut dbeta = vec![T::ZERO; c];
    for sample in 0..n {
        for ch in 0..c {
            let at = sample * c + ch;
            dgamma[ch] += s2[at] * rstd[sample * groups + ch / per_group];
            dbeta[ch] += s1[at];
        }
    }
    (dx, dgamma, dbeta)
}

/// `γ·rstd·(x − mean) + β` per channel of `x [N, C, hw]` (as `a·x + b`), one pass;
/// `[γ, β, mean, rstd]` each `[C]`.
fn channel_normalize<T: Real>(x: &[T], [gamma, beta, mean, rstd]: [&[T]; 4], hw: usize) -> Vec<T> {
    let c = gamma.len();
    // SAFETY: the planes cover `y`, each written whole.
    unsafe {
        written(x.len(), |y| {
            y.par_chunks_mut(hw)
                .zip(x.par_chunks(hw))
                .enumerate()
                .for_each(|(plane, (ys, xs))| {
                    let ch = plane % c;
                    let a = gamma[ch] * rstd[ch];
                    affine(ys, xs, a, beta[ch] - mean[ch] * a);
                })
        })
    }
}

/// What the batch-norm forward hands its backward and the running estimates.
pub struct BatchNormForward {
    /// `[N, C, H, W]`
    pub output: FlexTensor,
    /// `[C]`: the batch mean.
    pub mean: FlexTensor,
    /// `[C]`: the biased batch variance.
    pub var: FlexTensor,
    /// `[C]`: `1/sqrt(var + eps)`.
    pub rstd: FlexTensor,
}

/// Training-mode batch normalisation of `x [N, C, H, W]` with `weight`, `bias [C]`.
pub fn batch_norm_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    eps: f64,
) -> BatchNormForward {
    let [n, c, h, w] = dims::<4>(x);
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    with_real!(x.dtype(), T => {
        let (y, mean, var, rstd) = batch_norm_slices::<T>(
            elements(&x), elements(&weight), elements(&bias), [n, c, h * w], T::of(eps),
        );
        BatchNormForward {
            output: from_vec(y, &[n, c, h, w]),
            mean: from_vec(mean, &[c]),
            var: from_vec(var, &[c]),
            rstd: from_vec(rstd, &[c]),
        }
    })
}

/// Per-channel totals over the batch of per-(sample, channel) values `[N·C]`.
fn over_batch<T: Real>(per_plane: &[T], c: usize) -> Vec<T> {
    let mut total = vec![T::ZERO; c];
    for sample in per_plane.chunks(c) {
        for (t, &v) in total.iter_mut().zip(sample) {
            *t += v;
        }
    }
    total
}

#[allow(clippy::type_complexity)]
fn batch_norm_slices<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    [n, c, hw]: [usize; 3],
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let count = T::count(n * hw);
    if x.is_empty() {
        return (
            Vec::new(),
            vec![T::ZERO; c],
            vec![T::ZERO; c],
            vec![T::ONE; c],
        );
    }
    let sums: Vec<T> = x.par_chunks(hw).map(sum).collect();
    let mean: Vec<T> = over_batch(&sums, c)
        .into_iter()
        .map(|s| s / count)
        .collect();
    let squares: Vec<T> = x
        .par_chunks(hw)
        .enumerate()
        .map(|(plane, xs)| centred_sum_of_squares(xs, mean[plane % c]))
        .collect();
    let var: Vec<T> = over_batch(&squares, c)
        .into_iter()
        .map(|s| s / count)
        .collect();
    let rstd: Vec<T> = var.iter().map(|&v| T::ONE / (v + eps).sqrt()).collect();
    let y = channel_normalize(x, [gamma, beta, &mean, &rstd], hw);
    (y, mean, var, rstd)
}

fn batch_norm_backward_slices<T: Real>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    [n, c, hw]: [usize; 3],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    if x.is_empty() {
        return (Vec::new(), vec![T::ZERO; c], vec![T::ZERO; c]);
    }
    let count = T::count(n * hw);
    let (s1, s2) = channel_sums(x, dy, mean, [c, hw]);
    // dx = a·dy + b·x + d per channel.
    let coefficients: Vec<(T, T, T)> = (0..c)
        .map(|ch| {
            let a = gamma[ch] * rstd[ch];
            let b = -a * rstd[ch] * rstd[ch] * s2[ch] / count;
            (a, b, -a * s1[ch] / count - b * mean[ch])
        })
        .collect();
    // SAFETY: the planes cover `dx`, each written whole.
    let dx = unsafe {
        written(x.len(), |dx| {
            dx.par_chunks_mut(hw)
                .zip(x.par_chunks(hw).zip(dy.par_chunks(hw)))
                .enumerate()
                .for_each(|(plane, (dxs, (xs, dys)))| {
                    let (a, b, d) = coefficients[plane % c];
                    affine2(dxs, dys, xs, a, b, d);
                })
        })
    };
    let dgamma = s2.iter().zip(rstd).map(|(&s, &r)| s * r).collect();
    (dx, dgamma, s1)
}

/// Batch normalisation with given per-channel statistics `mean`, `var [C]` (evaluation, EstBN):
/// the output and `1/sqrt(var + eps)`.
pub fn batch_norm_fixed_forward(
    x: &FlexTensor,
    mean: &FlexTensor,
    var: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    eps: f64,
) -> (FlexTensor, FlexTensor) {
    let [n, c, h, w] = dims::<4>(x);
    let [x, mean, var] = [x, mean, var].map(contiguous);
    let (weight, bias) = (contiguous(weight), contiguous(bias));
    with_real!(x.dtype(), T => {
        let (x, mean, var) = (elements::<T>(&x), elements::<T>(&mean), elements::<T>(&var));
        let (gamma, beta) = (elements::<T>(&weight), elements::<T>(&bias));
        let rstd: Vec<T> = var.iter().map(|&v| T::ONE / (v + T::of(eps)).sqrt()).collect();
        let y = if x.is_empty() {
            Vec::new()
        } else {
            channel_normalize(x, [gamma, beta, mean, &rstd], h * w)
        };
        (from_vec(y, &[n, c, h, w]), from_vec(rstd, &[c]))
    })
}

/// Per channel, over the batch: `Σdy` and `Σdy·(x − mean)`.
fn channel_sums<T: Real>(x: &[T], dy: &[T], mean: &[T], [c, hw]: [usize; 2]) -> (Vec<T>, Vec<T>) {
    let planes: Vec<(T, T)> = x
        .par_chunks(hw)
        .zip(dy.par_chunks(hw))
        .enumerate()
        .map(|(plane, (xs, dys))| (sum(dys), centred_dot(dys, xs, mean[plane % c])))
        .collect();
    let (s1, s2): (Vec<T>, Vec<T>) = planes.into_iter().unzip();
    (over_batch(&s1, c), over_batch(&s2, c))
}

/// With constant statistics: `dx = γ·rstd·dy`, `dγ = Σdy·(x − mean)·rstd`, `dβ = Σdy`.
fn batch_norm_fixed_backward_slices<T: Real>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    [_, c, hw]: [usize; 3],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    if x.is_empty() {
        return (Vec::new(), vec![T::ZERO; c], vec![T::ZERO; c]);
    }
    let (s1, s2) = channel_sums(x, dy, mean, [c, hw]);
    // SAFETY: the planes cover `dx`, each written whole.
    let dx = unsafe {
        written(x.len(), |dx| {
            dx.par_chunks_mut(hw)
                .zip(dy.par_chunks(hw))
                .enumerate()
                .for_each(|(plane, (dxs, dys))| {
                    let ch = plane % c;
                    affine(dxs, dys, gamma[ch] * rstd[ch], T::ZERO);
                })
        })
    };
    let dgamma = s2.iter().zip(rstd).map(|(&s, &r)| s * r).collect();
    (dx, dgamma, s1)
}

/// Which normalisation [`backward`] differentiates.
#[derive(Clone, Copy, Debug)]
pub enum Norm {
    /// [`group_norm_forward`]; `mean`, `rstd` per (sample, group).
    Group { groups: usize },
    /// [`batch_norm_forward`]: batch statistics, differentiated through.
    Batch,
    /// [`batch_norm_fixed_forward`]: constant statistics.
    Fixed,
}

/// The gradients of a normalisation's input, weight and bias given the output gradient
/// `grad [N, C, H, W]` and what its forward saved (`mean`, `rstd`).
pub fn backward(
    norm: Norm,
    x: &FlexTensor,
    weight: &FlexTensor,
    mean: &FlexTensor,
    rstd: &FlexTensor,
    grad: &FlexTensor,
) -> NormGrads {
    let [n, c, h, w] = dims::<4>(x);
    let [x, weight, mean, rstd, grad] = [x, weight, mean, rstd, grad].map(contiguous);
    with_real!(x.dtype(), T => {
        let (xs, dy, gamma) = (elements::<T>(&x), elements::<T>(&grad), elements::<T>(&weight));
        let (mean, rstd) = (elements::<T>(&mean), elements::<T>(&rstd));
        let sizes = [n, c, h * w];
        let (dx, dgamma, dbeta) = match norm {
            Norm::Group { groups } => {
                group_norm_backward_slices(xs, dy, gamma, mean, rstd, sizes, groups)
            }
            Norm::Batch => batch_norm_backward_slices(xs, dy, gamma, mean, rstd, sizes),
            Norm::Fixed => batch_norm_fixed_backward_slices(xs, dy, gamma, mean, rstd, sizes),
        };
        NormGrads {
            x: from_vec(dx, &[n, c, h, w]),
            weight: from_vec(dgamma, &[c]),
            bias: from_vec(dbeta, &[c]),
        }
    })
}
