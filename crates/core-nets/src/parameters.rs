//! Parameter counting as the papers count: trainable tensors only. burn's `num_params` also counts
//! running-statistics buffers, which PyTorch's `sum(p.numel() for p in model.parameters())` does not.

use burn::{
    module::{Module, ModuleVisitor, Param},
    tensor::{Tensor, backend::Backend},
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
