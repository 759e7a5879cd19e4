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
    tensor::backend::Backend,
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

/// Runs `$body` with `$k` naming the backend with CubeCL segment kernels that `$b` is, if it is one
/// of them (`return`s the body's value from the enclosing function); else does nothing. The
/// backends are burn's `Wgpu` and `Cuda` as vireo builds them (feature `wgpu`, `cuda`).
#[macro_export]
#[doc(hidden)]
macro_rules! with_segment_kernels {
    ($b:ty, |$k:ident| $body:block) => {{
        #[cfg(feature = "wgpu")]
        if ::core::any::TypeId::of::<$b>() == ::core::any::TypeId::of::<::burn::backend::Wgpu>() {
            #[allow(dead_code)]
            type $k = ::burn::backend::Wgpu;
            #[allow(unused_imports)]
            use $crate::cube::SegmentKernels as _;
            $body
        }
        #[cfg(feature = "cuda")]
        if ::core::any::TypeId::of::<$b>() == ::core::any::TypeId::of::<::burn::backend::Cuda>() {
            #[allow(dead_code)]
            type $k = ::burn::backend::Cuda;
            #[allow(unused_imports)]
            use $crate::cube::SegmentKernels as _;
            $body
        }
    }};
}

/// Runs `$body` with `$k` naming the backend whose `Autodiff<$k>` is `$b` ([`Kernels::AutodiffCube`]).
#[macro_export]
#[doc(hidden)]
macro_rules! with_autodiff_segment_kernels {
    ($b:ty, |$k:ident| $body:block) => {{
        #[cfg(feature = "wgpu")]
        if ::core::any::TypeId::of::<$b>()
            == ::core::any::TypeId::of::<::burn::backend::Autodiff<::burn::backend::Wgpu>>()
        {
            #[allow(dead_code)]
            type $k = ::burn::backend::Wgpu;
            #[allow(unused_imports)]
            use $crate::cube::SegmentKernels as _;
            $body
        }
        #[cfg(feature = "cuda")]
        if ::core::any::TypeId::of::<$b>()
            == ::core::any::TypeId::of::<::burn::backend::Autodiff<::burn::backend::Cuda>>()
        {
            #[allow(dead_code)]
            type $k = ::burn::backend::Cuda;
            #[allow(unused_imports)]
            use $crate::cube::SegmentKernels as _;
            $body
        }
        unreachable!(
            "Kernels::AutodiffCube on {}",
            ::core::any::type_name::<$b>()
        )
    }};
}

/// Whether `B` is one of the backends [`with_segment_kernels`] knows, with or without autodiff.
#[cfg(feature = "cube")]
fn cube_kind<B: Backend>() -> Option<Kernels> {
    fn is<B: Backend>() -> bool {
        crate::with_segment_kernels!(B, |K| {
            return true;
        });
        false
    }
    fn is_autodiff<B: Backend>() -> bool {
        #[cfg(feature = "wgpu")]
        if TypeId::of::<B>() == TypeId::of::<Autodiff<burn::backend::Wgpu>>() {
            return true;
        }
        #[cfg(feature = "cuda")]
        if TypeId::of::<B>() == TypeId::of::<Autodiff<burn::backend::Cuda>>() {
            return true;
        }
        false
    }
    if is::<B>() {
        Some(Kernels::Cube)
    } else if is_autodiff::<B>() {
        Some(Kernels::AutodiffCube)
    } else {
        None
    }
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
