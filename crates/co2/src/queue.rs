//! MoCo's queue of negative keys (`co2-moco.md` §2.1): `[dim, K]` unit columns and a pointer,
//! filled B columns at a time, oldest first. Both are parameters without gradient, so they are
//! saved in the model's checkpoints and a resumed run continues with the same negatives.

use burn::{
    module::{Module, Param, ParamId},
    tensor::{Int, Tensor, backend::Backend},
};

#[derive(Module, Debug)]
pub struct Queue<B: Backend> {
    /// `[dim, K]`, each column a unit key.
    pub keys: Param<Tensor<B, 2>>,
    /// `[1]`, the column the next batch is written to.
    pub pointer: Param<Tensor<B, 1, Int>>,
}

impl<B: Backend> Queue<B> {
    /// `K` random unit keys of `dim` (N(0, 1) normalised per column, as MoCo initialises it).
    pub fn new(dim: usize, size: usize, device: &B::Device) -> Self {
        let keys = Tensor::<B, 2>::random(
            [dim, size],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        );
        let norms = keys.clone().powi_scalar(2).sum_dim(0).sqrt(); // [1, K]
        Self::from_parts(keys / norms, 0)
    }

    /// A queue holding `keys` `[dim, K]` with its pointer at `pointer`.
    pub fn from_parts(keys: Tensor<B, 2>, pointer: usize) -> Self {
        Self::with_ids(ParamId::new(), ParamId::new(), keys, pointer)
    }

    fn with_ids(keys_id: ParamId, pointer_id: ParamId, keys: Tensor<B, 2>, pointer: usize) -> Self {
        let device = keys.device();
        Self {
            keys: Param::initialized(keys_id, keys.detach()).set_require_grad(false),
            pointer: Param::initialized(pointer_id, Tensor::from_ints([pointer as i32], &device)),
        }
    }

    /// K, the number of negatives.
    pub fn len(&self) -> usize {
        self.keys.dims()[1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column the next batch is written to.
    pub fn position(&self) -> usize {
        use burn::tensor::ElementConversion;
        self.pointer.val().into_scalar().elem::<i64>() as usize
    }

    /// The negatives of this step: the keys as they are *before* this step's enqueue (§6 pitfall 1).
    pub fn snapshot(&self) -> Tensor<B, 2> {
        self.keys.val().detach()
    }

    /// Writes `keys` `[B, dim]` into columns `ptr .. ptr + B` and advances the pointer modulo K.
    /// `K % B == 0` is checked when the config is validated; here it is an invariant.
    pub fn enqueue(self, keys: Tensor<B, 2>) -> Self {
        let [batch, dim] = keys.dims();
        let (size, at) = (self.len(), self.position());
        assert!(
            at + batch <= size,
            "queue of {size} keys: a batch of {batch} at column {at} does not fit (K must be a multiple of the batch)"
        );
        let written = self
            .keys
            .val()
            .slice_assign([0..dim, at..at + batch], keys.detach().transpose());
        Self::with_ids(self.keys.id, self.pointer.id, written, (at + batch) % size)
    }
}
