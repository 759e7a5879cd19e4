//! The released initialisation of the classification ResNeXt (`elastic.md` §3, pitfall 6), by
//! parameter name as the official loop does it: a weight whose name contains `conv` →
//! kaiming-normal, fan_in, ReLU gain; one whose name contains `bn` → 1, and `bn3` → **0**; every
//! bias → 0; `fc.weight` ~ N(0, 0.01). The projection shortcut's conv (`downsample.0.weight`)
//! matches neither rule and keeps PyTorch's default kaiming-uniform(a = √5), i.e.
//! U(±1/√fan_in): with `quirk = true` (as released) vireo reproduces that, with `false` it gets
//! kaiming-normal like every other conv. Its BN (`downsample.1`) stays at 1 / 0 either way.

use burn::{
    module::{Module, ModuleMapper, Param},
    nn::Initializer,
    tensor::{Tensor, backend::Backend},
};
use core_nets::ResNet;

struct OfficialInit {
    path: Vec<String>,
    quirk: bool,
}

impl OfficialInit {
    /// The official parameter name's parts, without burn's enum-variant levels.
    fn names(&self) -> Vec<&str> {
        const VARIANTS: [&str; 6] = [
            "Basic",
            "Bottleneck",
            "TwoPath",
            "Batch",
            "Group",
            "Identity",
        ];
        self.path
            .iter()
            .map(String::as_str)
            .filter(|p| !VARIANTS.contains(p))
            .collect()
    }
}

impl<B: Backend> ModuleMapper<B> for OfficialInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let names = self.names();
        let (Some(&leaf), Some(&owner)) = (names.last(), names.iter().rev().nth(1)) else {
            return param;
        };
        let in_downsample = names.contains(&"downsample");
        let dims: [usize; D] = param.shape().dims();
        let device = param.device();
        let fan_in = dims.iter().skip(1).product::<usize>().max(1);
        let init = match (leaf, owner) {
            ("bias", _) => Some(Initializer::Zeros),
            ("weight", "fc") => Some(Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            }),
            ("weight", "conv") if in_downsample => Some(if self.quirk {
                let bound = 1.0 / (fan_in as f64).sqrt();
                Initializer::Uniform {
                    min: -bound,
                    max: bound,
                }
            } else {
                kaiming_fan_in()
            }),
            ("weight", "norm") if in_downsample => Some(Initializer::Ones),
            ("weight", o) if o.starts_with("conv") => Some(kaiming_fan_in()),
            ("weight", "bn3") => Some(Initializer::Zeros),
            ("weight", o) if o.starts_with("bn") => Some(Initializer::Ones),
            _ => None,
        };
        match init {
            Some(init) => {
                let id = param.id;
                let value = init
                    .init_with::<B, D, _>(dims, Some(fan_in), None, &device)
                    .val();
                Param::initialized(id, value)
            }
            None => param,
        }
    }
}

fn kaiming_fan_in() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

/// `model` re-initialised as the official classification ResNeXt is (`quirk`: the projection
/// convs keep PyTorch's default init, as released).
pub fn official_init<B: Backend>(model: ResNet<B>, quirk: bool) -> ResNet<B> {
    model.map(&mut OfficialInit {
        path: Vec::new(),
        quirk,
    })
}
