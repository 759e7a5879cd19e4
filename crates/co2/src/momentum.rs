//! The momentum (key) encoder's update (`co2-moco.md` §2.1): `θ_k ← m·θ_k + (1 − m)·θ_q` for every
//! parameter, BN running statistics left alone (they are never used, MoCo issue #70). The key
//! encoder is its own module with its own parameter ids — a clone would share the query's ids
//! (`burn-measured.md`) — so the update walks both in the same order.

use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param},
    tensor::{Tensor, backend::Backend},
};

/// burn visits BN running statistics (`RunningState`) like parameters; the update leaves them out.
fn is_running_statistic(path: &[String]) -> bool {
    path.last()
        .is_some_and(|name| name == "running_mean" || name == "running_var")
}

/// The query encoder's parameters, flattened, in visiting order.
struct Collect<B: Backend> {
    values: Vec<Tensor<B, 1>>,
    path: Vec<String>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !is_running_statistic(&self.path) {
            self.values.push(param.val().detach().flatten(0, D - 1));
        }
    }
}

/// Blends each key parameter with the query's parameter at the same position.
struct Blend<B: Backend> {
    query: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if is_running_statistic(&self.path) {
            return param;
        }
        let query = self
            .query
            .next()
            .expect("the key and query encoders have the same parameters");
        let momentum = self.momentum;
        param.map(|key| {
            let require_grad = key.is_require_grad();
            let shape = key.shape();
            // A fresh leaf: the average is not part of any graph.
            let blended = momentum_average(key.detach(), query.reshape(shape), momentum).detach();
            if require_grad {
                blended.require_grad()
            } else {
                blended
            }
        })
    }
}

/// `m·θ_k + (1 − m)·θ_q`.
pub fn momentum_average<B: Backend, const D: usize>(
    key: Tensor<B, D>,
    query: Tensor<B, D>,
    m: f64,
) -> Tensor<B, D> {
    key * m + query * (1.0 - m)
}

/// `key` with every parameter moved towards `query`'s by `1 − m`; both must have one structure.
pub fn momentum_update<B: Backend, M: Module<B>>(key: M, query: &M, m: f64) -> M {
    let mut collect = Collect {
        values: Vec::new(),
        path: Vec::new(),
    };
    query.visit(&mut collect);
    key.map(&mut Blend {
        query: collect.values.into_iter(),
        momentum: m,
        path: Vec::new(),
    })
}
