//! Which implementation a backend gets, decided by its type.
//!
//! A generic function cannot call a method its bound does not name; it can compare its backend's
//! `TypeId` with the backends this crate has kernels for and, on a match, move its tensors into
//! the concrete type through `Any` (safe code: a mismatch is a panic, never a reinterpretation).
//! The comparison is of two constants per instantiation, so the branch costs nothing.

use std::{
    any::{Any, TypeId},
    sync::OnceLock,
};

use burn::{
    backend::{Autodiff, Flex},
    tensor::{Tensor, backend::Backend},
};

/// The implementation an operation runs on backend `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// burn-flex: the raw-slice kernels of [`crate::flex`].
    Flex,
    /// `Autodiff<Flex>`: the flex kernels with the backward steps of [`crate::autodiff`].
    AutodiffFlex,
    /// wgpu or CUDA (under fusion, as vireo builds them): the normalisations from the CubeCL
    /// segment reductions of [`crate::cube`] ([`crate::segments`]), the rest composed.
    Cube,
    /// `Autodiff` of one of those: the same, each normalisation one graph node with its own
    /// backward ([`crate::segments::autodiff`]).
    AutodiffCube,
    /// Any other backend: the composition of burn ops in [`crate::reference`].
    Composed,
}

/// Runs `$body` with `$k` naming the backend with CubeCL segment kernels ([`crate::cube`]) that
/// `$b` is — or, with `autodiff`, whose `Autodiff` `$b` is — if it is one of them (the body
/// `return`s from the enclosing function); else does nothing. The backends are burn's `Wgpu` and
/// `Cuda` as vireo builds them (features `wgpu`, `cuda`; under fusion).
#[macro_export]
#[doc(hidden)]
macro_rules! with_segment_kernels {
    ($b:ty, |$k:ident| $body:block) => {
        $crate::with_segment_kernels!(@each $b, |$k| $k, $body)
    };
    (autodiff $b:ty, |$k:ident| $body:block) => {
        $crate::with_segment_kernels!(@each $b, |$k| ::burn::backend::Autodiff<$k>, $body)
    };
    (@each $b:ty, |$k:ident| $outer:ty, $body:block) => {{
        $crate::with_segment_kernels!(@one "wgpu", Wgpu, $b, |$k| $outer, $body);
        $crate::with_segment_kernels!(@one "cuda", Cuda, $b, |$k| $outer, $body);
    }};
    (@one $feature:literal, $backend:ident, $b:ty, |$k:ident| $outer:ty, $body:block) => {
        #[cfg(feature = $feature)]
        {
            #[allow(dead_code)]
            type $k = ::burn::backend::$backend;
            if ::core::any::TypeId::of::<$b>() == ::core::any::TypeId::of::<$outer>() {
                #[allow(unused_imports)]
                use $crate::cube::SegmentKernels as _;
                $body
            }
        }
    };
}

/// Whether `B` is one of the backends [`with_segment_kernels`] knows, with or without autodiff.
#[cfg(feature = "cube")]
fn cube_kind<B: Backend>() -> Option<Kernels> {
    crate::with_segment_kernels!(B, |K| {
        return Some(Kernels::Cube);
    });
    crate::with_segment_kernels!(autodiff B, |K| {
        return Some(Kernels::AutodiffCube);
    });
    None
}

/// For [`Kernels::AutodiffCube`] after [`with_segment_kernels`] found no backend: cannot happen,
/// [`kernels`] chose the variant from the same list.
pub fn unreachable_backend<B: Backend>() -> ! {
    unreachable!("Kernels::AutodiffCube on {}", std::any::type_name::<B>())
}

/// The environment variable that, set to `composed`, sends every operation to its composition
/// of burn ops on every backend (to compare the two, or to rule the kernels out of a problem).
pub const KERNELS_VAR: &str = "VIREO_KERNELS";

/// Whether [`KERNELS_VAR`] asks for the compositions (read once per process).
fn composed_only() -> bool {
    static COMPOSED: OnceLock<bool> = OnceLock::new();
    *COMPOSED.get_or_init(|| match std::env::var(KERNELS_VAR) {
        Ok(v) if v == "composed" => true,
        Ok(v) if v.is_empty() || v == "native" => false,
        Ok(v) => panic!("{KERNELS_VAR}={v:?}: expected `composed` or `native`"),
        Err(_) => false,
    })
}

/// The implementation `B` gets.
pub fn kernels<B: Backend>() -> Kernels {
    let id = TypeId::of::<B>();
    if composed_only() {
        Kernels::Composed
    } else if id == TypeId::of::<Flex>() {
        Kernels::Flex
    } else if id == TypeId::of::<Autodiff<Flex>>() {
        Kernels::AutodiffFlex
    } else {
        #[cfg(feature = "cube")]
        if let Some(kind) = cube_kind::<B>() {
            return kind;
        }
        Kernels::Composed
    }
}

/// A float tensor's backend primitive.
pub(crate) fn primitive<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> burn::tensor::ops::FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// The float tensor of a backend primitive.
pub(crate) fn tensor<B: Backend, const D: usize>(
    primitive: burn::tensor::ops::FloatTensor<B>,
) -> Tensor<B, D> {
    Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(primitive))
}

/// `value` as type `T`, which must be its own type under another name (a generic parameter
/// resolved by [`kernels`]).
///
/// # Panics
/// If `A` and `T` are different types.
pub fn cast<A: 'static, T: 'static>(value: A) -> T {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(same) => same.take().expect("the value is in its slot"),
        None => panic!(
            "core_ops::dispatch::cast from {} to {}",
            std::any::type_name::<A>(),
            std::any::type_name::<T>()
        ),
    }
}
