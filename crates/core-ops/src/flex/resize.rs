//! Bilinear resize on flex, PyTorch's `F.interpolate(mode="bilinear")` taps
//! ([`crate::reference::bilinear_taps`]): separable, first along the height (a row of the output
//! is `a + (b − a)·t` of two input rows), then along the width. The backward runs the same taps
//! the other way, adding into the input's gradient. Planes (sample, channel) run in parallel, so
//! no two threads add into the same element.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{Real, contiguous, dims, elements, from_vec, with_real, written};
use crate::reference::bilinear_taps;

/// One axis' taps: the two source indices and the weight of the second.
struct Taps<T> {
    first: Vec<usize>,
    second: Vec<usize>,
    weight: Vec<T>,
}

impl<T: Real> Taps<T> {
    fn new(input: usize, output: usize, align_corners: bool) -> Self {
        let (first, second, weight) = bilinear_taps(input, output, align_corners);
        Self {
            first: first.into_iter().map(|i| i as usize).collect(),
            second: second.into_iter().map(|i| i as usize).collect(),
            weight: weight.into_iter().map(T::of).collect(),
        }
    }

    /// The row and column taps of a `[h, w]` → `[height, width]` resize.
    fn of_planes(
        [h, w]: [usize; 2],
        [height, width]: [usize; 2],
        align_corners: bool,
    ) -> [Self; 2] {
        [
            Self::new(h, height, align_corners),
            Self::new(w, width, align_corners),
        ]
    }
}

/// `x [N, C, h, w]` resized to `[N, C, height, width]`.
pub fn forward(x: &FlexTensor, [height, width]: [usize; 2], align_corners: bool) -> FlexTensor {
    let [n, c, h, w] = dims::<4>(x);
    let x = contiguous(x);
    with_real!(x.dtype(), T => {
        let xs = elements::<T>(&x);
        let [rows, cols] = Taps::<T>::of_planes([h, w], [height, width], align_corners);
        let plane_out = height * width;
        let y = if plane_out == 0 || h * w == 0 {
            vec![T::ZERO; n * c * plane_out]
        } else {
            // SAFETY: the planes cover the output, each row of each written whole.
            unsafe {
                written(n * c * plane_out, |y| {
                    y.par_chunks_mut(plane_out)
                        .zip(xs.par_chunks(h * w))
                        .for_each(|(out, plane)| {
                            let mut row = vec![T::ZERO; w];
                            for (oy, out_row) in out.chunks_mut(width).enumerate() {
                                let a = &plane[rows.first[oy] * w..][..w];
                                let b = &plane[rows.second[oy] * w..][..w];
                                let t = rows.weight[oy];
                                for ((r, &a), &b) in row.iter_mut().zip(a).zip(b) {
                                    *r = a + (b - a) * t;
                                }
                                for (ox, o) in out_row.iter_mut().enumerate() {
                                    let (a, b) = (row[cols.first[ox]], row[cols.second[ox]]);
                                    o.write(a + (b - a) * cols.weight[ox]);
                                }
                            }
                        })
                })
            }
        };
        from_vec(y, &[n, c, height, width])
    })
}

/// The input's gradient given the output's, `grad [N, C, height, width]`, for an input of
/// `input_shape`.
pub fn backward(grad: &FlexTensor, input_shape: [usize; 4], align_corners: bool) -> FlexTensor {
    let [n, c, h, w] = input_shape;
    let [_, _, height, width] = dims::<4>(grad);
    let grad = contiguous(grad);
    with_real!(grad.dtype(), T => {
        let gs = elements::<T>(&grad);
        let [rows, cols] = Taps::<T>::of_planes([h, w], [height, width], align_corners);
        let mut dx = vec![T::ZERO; n * c * h * w];
        if height * width > 0 && h * w > 0 {
            dx.par_chunks_mut(h * w)
                .zip(gs.par_chunks(height * width))
                .for_each(|(plane, g)| {
                    let mut row = vec![T::ZERO; w];
                    for (oy, g_row) in g.chunks(width).enumerate() {
                        row.fill(T::ZERO);
                        for (ox, &gv) in g_row.iter().enumerate() {
                            let t = cols.weight[ox];
                            row[cols.first[ox]] += gv - gv * t;
                            row[cols.second[ox]] += gv * t;
                        }
                        let t = rows.weight[oy];
                        let a = rows.first[oy] * w;
                        for (d, &r) in plane[a..a + w].iter_mut().zip(&row) {
                            *d += r - r * t;
                        }
                        let b = rows.second[oy] * w;
                        for (d, &r) in plane[b..b + w].iter_mut().zip(&row) {
                            *d += r * t;
                        }
                    }
                });
        }
        from_vec(dx, &[n, c, h, w])
    })
}
