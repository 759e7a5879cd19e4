//! SAKE's network (`sake.md` §2.1–2.3): the CSE-ResNet-50 — Cadene's Caffe-style SE-ResNet-50
//! with a 1-bit domain code (0 sketch, 1 photo) in every SE block (core-nets'
//! [`ResNetConfig::cse_resnet50`]) — under the official `CSEResnetModel_KDHashing` heads: the
//! D-dimensional embedding `second_last_linear`, the ImageNet head `last_linear` on the embedding,
//! and the benchmark classifier `linear`; the two hashing layers start from a rank-D SVD of the
//! teacher's ImageNet classifier. The teacher is the same CSE-ResNet with its own classifier
//! (`fc`, the file's `last_linear`), converted from the ImageNet SE-ResNet-50 with zero domain
//! columns so that it ignores the domain bit.

use burn::{
    module::{Module, Param},
    nn::{Linear, LinearConfig},
    tensor::{Tensor, TensorData, backend::Backend},
};
use core_nets::{ResNet, ResNetConfig};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Sketch or photo: the bit every CSE block reads (`sake.md` pitfall 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Domain {
    Sketch,
    Photo,
}

impl Domain {
    pub fn bit(self) -> f32 {
        match self {
            Domain::Sketch => 0.0,
            Domain::Photo => 1.0,
        }
    }
}

/// `[B, 1]` domain bits of `domains`.
pub fn domain_codes<B: Backend>(domains: &[Domain], device: &B::Device) -> Tensor<B, 2> {
    let bits: Vec<f32> = domains.iter().map(|d| d.bit()).collect();
    Tensor::from_data(TensorData::new(bits, [domains.len(), 1]), device)
}

/// `CSEResnetModel_KDHashing`'s structure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SakeModelConfig {
    /// The CSE-ResNet trunk (its classifier is ignored: the heads below replace it).
    pub backbone: ResNetConfig,
    /// D, `num_hashing`: 64 in the README's setting, 512 in the Sketchy training script.
    pub hashing_dim: usize,
    /// The benchmark's seen classes (220 TU-Berlin, 100 Sketchy, 104 Sketchy split 2).
    pub num_classes: usize,
    /// The teacher's classes (ImageNet's 1000).
    pub teacher_classes: usize,
    /// The official `--ems-loss` option's classifier: class centres `cpars` `[classes, D]`,
    /// logits = −Euclidean distance to each ([`EmsLayer`]); off in every recipe.
    pub ems: bool,
}

impl Default for SakeModelConfig {
    fn default() -> Self {
        Self {
            backbone: ResNetConfig::cse_resnet50(),
            hashing_dim: 64,
            num_classes: 220,
            teacher_classes: 1000,
            ems: false,
        }
    }
}

impl SakeModelConfig {
    /// The teacher: the trunk with its `teacher_classes` classifier.
    pub fn teacher_config(&self) -> ResNetConfig {
        self.backbone
            .clone()
            .with_num_classes(Some(self.teacher_classes))
    }

    /// The trunk's pooled feature width (2048 for ResNet-50).
    pub fn feature_dim(&self) -> usize {
        self.backbone.stage_channels()[3]
    }

    /// A student with framework-default (random) heads; [`SakeNet::from_teacher`] gives the
    /// paper's initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SakeNet<B> {
        let d = self.hashing_dim;
        SakeNet {
            backbone: self.backbone.clone().with_num_classes(None).init(device),
            second_last_linear: LinearConfig::new(self.feature_dim(), d).init(device),
            last_linear: LinearConfig::new(d, self.teacher_classes).init(device),
            linear: if self.ems {
                Classifier::Ems(EmsLayer::new(self.num_classes, d, device))
            } else {
                Classifier::Linear(LinearConfig::new(d, self.num_classes).init(device))
            },
        }
    }

    /// The teacher with random weights (to be loaded or trained).
    pub fn init_teacher<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        self.teacher_config().init(device)
    }
}

/// The student, `CSEResnetModel_KDHashing` (checkpoint keys `original_model.{layer0..4}` →
/// `backbone`, `original_model.{second_last_linear, last_linear}`, `linear`).
#[derive(Module, Debug)]
pub struct SakeNet<B: Backend> {
    pub backbone: ResNet<B>,
    /// `2048 → D`: the embedding retrieval uses (L2-normalised).
    pub second_last_linear: Linear<B>,
    /// `D → 1000`: the ImageNet head knowledge preservation trains (`sake.md` pitfall 5).
    pub last_linear: Linear<B>,
    /// `D → classes`: the benchmark classifier.
    pub linear: Classifier<B>,
}

/// The benchmark classifier: linear, or the EMS layer of the `--ems-loss` option.
#[derive(Module, Debug)]
pub enum Classifier<B: Backend> {
    Linear(Linear<B>),
    Ems(EmsLayer<B>),
}

impl<B: Backend> Classifier<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Classifier::Linear(linear) => linear.forward(x),
            Classifier::Ems(ems) => ems.forward(x),
        }
    }
}

/// `EMSLayer` (official `ResnetModel.py`): logits `−sqrt(relu(‖x − c_k‖²))` to class centres
/// `cpars` `[classes, D]` (standard-normal initialisation; checkpoint key `linear.cpars`).
#[derive(Module, Debug)]
pub struct EmsLayer<B: Backend> {
    pub cpars: Param<Tensor<B, 2>>,
}

impl<B: Backend> EmsLayer<B> {
    pub fn new(classes: usize, dim: usize, device: &B::Device) -> Self {
        Self {
            cpars: Param::from_tensor(Tensor::random(
                [classes, dim],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                device,
            )),
        }
    }

    /// `x [B, D]` → `[B, classes]`: minus the distance to each centre, the squared distance
    /// expanded as `‖x‖² + ‖c‖² − 2 x·c` and clamped at 0 as the official `pairwise_distances`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let c = self.cpars.val();
        let x_norm = x.clone().powi_scalar(2).sum_dim(1); // [B, 1]
        let c_norm = c.clone().powi_scalar(2).sum_dim(1).transpose(); // [1, K]
        let squared = x_norm + c_norm - x.matmul(c.transpose()).mul_scalar(2.0);
        squared.clamp_min(0.0).sqrt().neg()
    }
}

/// What the student gives for a batch.
#[derive(Debug, Clone)]
pub struct SakeOutput<B: Backend> {
    /// `[B, D]`, not normalised.
    pub embedding: Tensor<B, 2>,
    /// `[B, classes]`.
    pub logits: Tensor<B, 2>,
    /// `[B, teacher classes]`.
    pub logits_kd: Tensor<B, 2>,
}

impl<B: Backend> SakeNet<B> {
    /// `x [B, 3, H, W]`, `domain [B, 1]` (0 sketch, 1 photo) → embedding and both heads' logits.
    pub fn forward(&self, x: Tensor<B, 4>, domain: Tensor<B, 2>) -> SakeOutput<B> {
        let embedding = self.embed(x, domain);
        SakeOutput {
            logits: self.linear.forward(embedding.clone()),
            logits_kd: self.last_linear.forward(embedding.clone()),
            embedding,
        }
    }

    /// The `[B, D]` embedding alone (retrieval).
    pub fn embed(&self, x: Tensor<B, 4>, domain: Tensor<B, 2>) -> Tensor<B, 2> {
        let pooled = self.backbone.forward_pooled_conditioned(x, Some(domain)); // [B, 2048]
        self.second_last_linear.forward(pooled)
    }

    /// The student of `teacher` (`sake.md` §2.3): a copy of its trunk (independent: own parameter
    /// ids and BN statistics, so training the student never moves the teacher), the hashing layers
    /// from the rank-D SVD of its classifier (the classifier's bias is discarded; the new biases
    /// and `linear` keep the framework's random initialisation).
    pub fn from_teacher(teacher: &ResNet<B>, config: &SakeModelConfig, device: &B::Device) -> Self {
        let fresh = config.init::<B>(device);
        let fc = teacher
            .fc
            .as_ref()
            .expect("the teacher has its ImageNet classifier");
        // burn stores a linear weight as [in, out]: the PyTorch matrix W is its transpose.
        let [features, classes] = fc.weight.dims();
        let w = fc.weight.val().transpose().into_data(); // [classes, features]
        let w: Vec<f32> = w.iter::<f32>().collect();
        let heads = svd_initialisation(&w, classes, features, config.hashing_dim);
        let d = config.hashing_dim;
        let as_burn_weight = |rows: usize, cols: usize, values: Vec<f32>| {
            // PyTorch [out = rows, in = cols] → burn [in, out].
            Param::from_tensor(
                Tensor::<B, 2>::from_data(TensorData::new(values, [rows, cols]), device)
                    .transpose(),
            )
        };
        let trunk = ResNet {
            fc: None,
            ..teacher.clone()
        };
        Self {
            backbone: core_nets::independent_copy(&trunk, fresh.backbone),
            second_last_linear: Linear {
                weight: as_burn_weight(d, features, heads.second_last),
                ..fresh.second_last_linear
            },
            last_linear: Linear {
                weight: as_burn_weight(classes, d, heads.last),
                ..fresh.last_linear
            },
            linear: fresh.linear,
        }
    }
}

/// The teacher's ImageNet logits `[B, classes]` for `x` with the domain bits `domain` (§2.4).
pub fn teacher_logits<B: Backend>(
    teacher: &ResNet<B>,
    x: Tensor<B, 4>,
    domain: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let fc = teacher
        .fc
        .as_ref()
        .expect("the teacher has its ImageNet classifier");
    fc.forward(teacher.forward_pooled_conditioned(x, Some(domain)))
}

/// The hashing layers' weights in PyTorch's `[out, in]` layout, row-major.
#[derive(Debug, Clone)]
pub struct SvdHeads {
    /// `diag(S)[:D, :D] · Vᵀ[:D, :]`, `[D, features]`.
    pub second_last: Vec<f32>,
    /// `U[:, :D]`, `[classes, D]`.
    pub last: Vec<f32>,
}

/// `sake.md` §2.3: `U S Vᵀ = svd(W)` of the teacher classifier `W` `[rows, cols]` (row-major,
/// float32 as the official code computes it); `second_last = diag(S)[:D] · Vᵀ[:D]`,
/// `last = U[:, :D]`, so `last · second_last` is W's best rank-D approximation. Singular values in
/// descending order; the factors' signs are not unique, their product is.
pub fn svd_initialisation(w: &[f32], rows: usize, cols: usize, d: usize) -> SvdHeads {
    assert!(
        d <= rows.min(cols),
        "hashing dimension {d} exceeds the rank bound of a {rows}×{cols} classifier"
    );
    let svd = DMatrix::from_row_slice(rows, cols, w).svd(true, true);
    let (u, v_t) = (svd.u.expect("U computed"), svd.v_t.expect("Vᵀ computed"));
    let s = svd.singular_values;
    let second_last = (0..d)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| s[i] * v_t[(i, j)])
        .collect();
    let last = (0..rows)
        .flat_map(|i| (0..d).map(move |j| (i, j)))
        .map(|(i, j)| u[(i, j)])
        .collect();
    SvdHeads { second_last, last }
}
