//! The kernels on burn-flex, vireo's CPU backend: raw f32/f64 slices of flex's storage (zero-copy
//! when contiguous), rayon across images or channel groups, `gemm` for the matrix products.
//!
//! Each operation has a primitive-level forward and backward (used by [`crate::autodiff`]) and a
//! `Tensor<Flex, _>` entry (used by [`crate::dispatch`] for inference). Tensors of another dtype
//! (f16, bf16) or of mixed dtypes run the [`crate::reference`] composition.

pub mod conv;
pub mod norm;
pub mod pool;
pub mod resize;
pub mod standardize;

use std::{
    mem::MaybeUninit,
    ops::{Add, AddAssign, Div, Mul, Neg, Sub},
};

use burn::{
    backend::{Flex, flex::FlexTensor},
    tensor::{DType, Element, Tensor, TensorData, ops::ConvOptions},
};

pub(crate) use crate::dispatch::{primitive, tensor};
use crate::reference;

/// The float types the kernels are written for.
pub trait Real:
    Element
    + bytemuck::Pod
    + Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn of(value: f64) -> Self;
    /// Runs `work` on this thread's scratch buffer of `len` elements (contents unspecified):
    /// kept between calls, so an operation's working memory is not fresh pages every time.
    fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [Self]) -> R) -> R;
    fn count(value: usize) -> Self {
        Self::of(value as f64)
    }
    fn sqrt(self) -> Self;
}

/// The scratch buffer of [`Real::with_scratch`]: taken out of its slot while in use (a nested
/// call on the same thread gets a fresh buffer instead of a conflicting borrow).
fn with_scratch_in<T: Real, R>(
    slot: &'static std::thread::LocalKey<std::cell::Cell<Vec<T>>>,
    len: usize,
    work: impl FnOnce(&mut [T]) -> R,
) -> R {
    let mut buffer = slot.take();
    if buffer.len() < len {
        buffer.resize(len, T::ZERO);
    }
    let result = work(&mut buffer[..len]);
    slot.set(buffer);
    result
}

thread_local! {
    static SCRATCH_F32: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static SCRATCH_F64: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [Self]) -> R) -> R {
        with_scratch_in(&SCRATCH_F32, len, work)
    }
    fn of(value: f64) -> Self {
        value as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [Self]) -> R) -> R {
        with_scratch_in(&SCRATCH_F64, len, work)
    }
    fn of(value: f64) -> Self {
        value
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// Runs `$body` with `$T` the Rust type of `$dtype` (F32 or F64; the caller checked it with
/// [`real_dtype`]).
macro_rules! with_real {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            burn::tensor::DType::F32 => {
                type $T = f32;
                $body
            }
            burn::tensor::DType::F64 => {
                type $T = f64;
                $body
            }
            other => unreachable!("core-ops kernels run on f32 or f64, not {other:?}"),
        }
    };
}
pub(crate) use with_real;

/// The dtype all `dtypes` share when the kernels handle it (F32 or F64).
pub fn real_dtype(dtypes: &[DType]) -> Option<DType> {
    let first = *dtypes.first()?;
    (matches!(first, DType::F32 | DType::F64) && dtypes.iter().all(|&d| d == first))
        .then_some(first)
}

/// The tensor laid out contiguously from offset 0 (a handle clone when it already is; a copy of
/// a strided view), ready for [`elements`].
pub(crate) fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    tensor.to_contiguous()
}

/// The elements of a tensor [`contiguous`] returned.
pub(crate) fn elements<T: Real>(tensor: &FlexTensor) -> &[T] {
    tensor
        .as_slice::<T>()
        .expect("a contiguous tensor of the dispatched dtype")
}

/// A vector of `len` elements that `fill` writes without zeroing it first (an output buffer is
/// one pass over memory, not two).
///
/// # Safety
/// `fill` must write every one of the `len` elements.
pub(crate) unsafe fn written<T: Real>(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    let mut values = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: the caller's promise; a panic inside `fill` leaves the length at 0.
    unsafe { values.set_len(len) };
    values
}

/// A tensor of `shape` owning `values` (no copy).
pub(crate) fn from_vec<T: Real>(values: Vec<T>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

pub(crate) fn dims<const D: usize>(tensor: &FlexTensor) -> [usize; D] {
    tensor.layout().shape().dims::<D>()
}

/// [`crate::conv2d`] on flex.
pub fn conv2d(
    x: Tensor<Flex, 4>,
    weight: Tensor<Flex, 4>,
    bias: Option<Tensor<Flex, 1>>,
    options: ConvOptions<2>,
) -> Tensor<Flex, 4> {
    let mut dtypes = vec![x.dtype(), weight.dtype()];
    dtypes.extend(bias.as_ref().map(|b| b.dtype()));
    if real_dtype(&dtypes).is_none() {
        return reference::conv2d(x, weight, bias, options);
    }
    tensor(conv::forward(
        &primitive(x),
        &primitive(weight),
        bias.map(primitive).as_ref(),
        &options,
    ))
}

/// [`crate::group_norm`] on flex.
pub fn group_norm(
    x: Tensor<Flex, 4>,
    weight: Tensor<Flex, 1>,
    bias: Tensor<Flex, 1>,
    groups: usize,
    eps: f64,
) -> Tensor<Flex, 4> {
    if real_dtype(&[x.dtype(), weight.dtype(), bias.dtype()]).is_none() {
        return reference::group_norm(x, weight, bias, groups, eps);
    }
    let forward = norm::group_norm_forward(
        &primitive(x),
        &primitive(weight),
        &primitive(bias),
        groups,
        eps,
    );
    tensor(forward.output)
}

/// [`crate::batch_norm_train`] on flex.
pub fn batch_norm_train(
    x: Tensor<Flex, 4>,
    weight: Tensor<Flex, 1>,
    bias: Tensor<Flex, 1>,
    eps: f64,
) -> (Tensor<Flex, 4>, Tensor<Flex, 1>, Tensor<Flex, 1>) {
    if real_dtype(&[x.dtype(), weight.dtype(), bias.dtype()]).is_none() {
        return reference::batch_norm_train(x, weight, bias, eps);
    }
    let forward =
        norm::batch_norm_forward(&primitive(x), &primitive(weight), &primitive(bias), eps);
    (
        tensor(forward.output),
        tensor(forward.mean),
        tensor(forward.var),
    )
}

/// [`crate::batch_norm_fixed`] on flex.
pub fn batch_norm_fixed(
    x: Tensor<Flex, 4>,
    [mean, var, weight, bias]: [Tensor<Flex, 1>; 4],
    eps: f64,
) -> Tensor<Flex, 4> {
    let dtypes = [
        x.dtype(),
        mean.dtype(),
        var.dtype(),
        weight.dtype(),
        bias.dtype(),
    ];
    if real_dtype(&dtypes).is_none() {
        return reference::channel_affine_normalize(x, mean, var, weight, bias, eps);
    }
    let [mean, var, weight, bias] = [mean, var, weight, bias].map(primitive);
    tensor(norm::batch_norm_fixed_forward(&primitive(x), &mean, &var, &weight, &bias, eps).0)
}

/// [`crate::standardize_weight`] on flex.
pub fn standardize_weight(weight: Tensor<Flex, 4>, ws: crate::Standardization) -> Tensor<Flex, 4> {
    if real_dtype(&[weight.dtype()]).is_none() {
        return reference::standardize_weight(weight, ws);
    }
    tensor(standardize::forward(&primitive(weight), ws).output)
}

/// [`crate::interpolate_bilinear`] on flex.
pub fn interpolate_bilinear(
    x: Tensor<Flex, 4>,
    size: [usize; 2],
    align_corners: bool,
) -> Tensor<Flex, 4> {
    if real_dtype(&[x.dtype()]).is_none() {
        return reference::interpolate_bilinear_burn(x, size, align_corners);
    }
    tensor(resize::forward(&primitive(x), size, align_corners))
}

/// [`crate::max_pool2d`] on flex.
pub fn max_pool2d(x: Tensor<Flex, 4>, pool: pool::Pool2d) -> Tensor<Flex, 4> {
    if real_dtype(&[x.dtype()]).is_none() {
        return reference::max_pool2d(x, pool);
    }
    tensor(pool::forward(&primitive(x), &pool))
}
