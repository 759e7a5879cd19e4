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
    /// Any other backend: the composition of burn ops in [`crate::reference`].
    Composed,
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
