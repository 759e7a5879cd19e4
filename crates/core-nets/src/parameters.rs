//! Parameter counting as the papers count: trainable tensors only. burn's `num_params` also counts
//! running-statistics buffers, which PyTorch's `sum(p.numel() for p in model.parameters())` does not.

use burn::{
    module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param},
    tensor::{
        Tensor,
        backend::{AutodiffBackend, Backend},
    },
};

struct TrainableCounter {
    path: Vec<String>,
    count: usize,
}

impl<B: Backend> ModuleVisitor<B> for TrainableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self
            .path
            .last()
            .is_some_and(|name| name.starts_with("running_"))
        {
            self.count += param.lazy_shape().num_elements();
        }
    }
}

/// The number of trainable scalars of `module` (running statistics excluded).
pub fn count_parameters<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut counter = TrainableCounter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}

/// Marks every trainable tensor (running statistics excluded) as requiring a gradient.
struct RequireGrad {
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self
            .path
            .last()
            .is_some_and(|name| name.starts_with("running_"))
        {
            return param;
        }
        param.set_require_grad(true)
    }
}

/// `inner` (e.g. a pre-trained network loaded on the inference backend) on the autodiff backend
/// with every trainable tensor requiring a gradient, parameter ids kept. burn's own
/// `Module::train` keeps the inner tensors' `require_grad = false`, so a fine-tuned network
/// lifted that way would silently receive no gradient.
pub fn trainable<B: AutodiffBackend, M: AutodiffModule<B>>(inner: M::InnerModule) -> M {
    M::from_inner(inner).map(&mut RequireGrad { path: Vec::new() })
}

/// Gives every float parameter a new id.
struct FreshIds;

impl<B: Backend> ModuleMapper<B> for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(burn::module::ParamId::new(), tensor, mapper)
    }
}

/// A copy of `module`'s values that shares nothing with it, in `template` (a fresh module of the
/// same structure): its own parameter ids — optimizers key gradients and state by id, so a clone
/// would be stepped together with its original — and its own BatchNorm running-statistics
/// storage, which a clone shares. For a network initialised from another that stays in use
/// (SAKE's student from its frozen teacher).
pub fn independent_copy<B: Backend, M: Module<B> + Clone>(module: &M, template: M) -> M {
    template
        .load_record(module.clone().into_record())
        .map(&mut FreshIds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        backend::{Autodiff, Flex},
        nn::{Linear, LinearConfig},
    };

    #[test]
    fn trainable_modules_receive_gradients() {
        use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
        let device = Default::default();
        // A network as a checkpoint gives it: loaded from a record on the inference backend.
        let fresh: Linear<Flex> = LinearConfig::new(3, 2).init(&device);
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder.record(fresh.clone().into_record(), ()).unwrap();
        let inner = fresh.load_record(recorder.load(bytes, &device).unwrap());
        let lifted: Linear<Autodiff<Flex>> = trainable(inner.clone());
        let x = Tensor::<Autodiff<Flex>, 2>::ones([1, 3], &device);
        let grads = lifted.forward(x).sum().backward();
        assert!(lifted.weight.grad(&grads).is_some());
        // What this fixes: burn's plain lift leaves the weights without a gradient.
        let plain: Linear<Autodiff<Flex>> = Linear::from_inner(inner);
        let x = Tensor::<Autodiff<Flex>, 2>::ones([1, 3], &device);
        let grads = plain.forward(x).sum().backward();
        assert!(plain.weight.grad(&grads).is_none());
    }
}
