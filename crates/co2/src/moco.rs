//! MoCo v1/v2 (He et al., CVPR 2020; Chen et al., arXiv 2003.04297) as CO2 builds on it
//! (`co2-moco.md` §2.1, §3): a query encoder (a core-nets ResNet without classifier and a projection
//! head: one linear layer in v1, Linear–ReLU–Linear in v2), a key encoder of the same structure
//! moved by momentum and never trained, and the queue of past keys.

use burn::{
    module::Module,
    nn::{Linear, LinearConfig, Relu},
    tensor::{Int, Tensor, backend::Backend},
};
use core_nets::{ResNet, ResNetConfig};
use serde::{Deserialize, Serialize};

use crate::{Queue, momentum::momentum_update};

/// MoCo's projection head on the pooled features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// v1: `Linear(C, dim)`.
    #[default]
    Linear,
    /// v2: `Linear(C, C) → ReLU → Linear(C, dim)`, no norm.
    Mlp,
}

/// How the key encoder's BN sees the key batch (Shuffle-BN on one device, §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyBn {
    /// A permutation of the key batch in `groups` sub-batches, each with its own BN statistics,
    /// un-permuted after: the single-device stand-in for Shuffle-BN.
    Split { groups: usize },
    /// The whole key batch at once (the model can cheat through BN statistics, §6 pitfall 6).
    None,
}

impl Default for KeyBn {
    fn default() -> Self {
        KeyBn::Split { groups: 2 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MocoConfig {
    /// The backbone (its classifier, if any, is left out: the encoders end in the projection head).
    pub backbone: ResNetConfig,
    #[serde(default)]
    pub head: Head,
    /// Embedding dimension (128).
    #[serde(default = "dim")]
    pub dim: usize,
    /// Queue size K (65,536); a multiple of the batch.
    pub queue: usize,
    /// Momentum m of the key encoder (0.999).
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// InfoNCE temperature τ (0.07 in v1, 0.2 in v2).
    pub tau: f64,
    #[serde(default)]
    pub key_bn: KeyBn,
}

fn dim() -> usize {
    128
}
fn momentum() -> f64 {
    0.999
}

impl MocoConfig {
    /// MoCo v1 on ResNet-50 (`moco_v1_200ep`): fc head, τ 0.07, K 65,536.
    pub fn moco_v1() -> Self {
        Self {
            backbone: ResNetConfig::resnet50().with_num_classes(None),
            head: Head::Linear,
            dim: 128,
            queue: 65_536,
            momentum: 0.999,
            tau: 0.07,
            key_bn: KeyBn::default(),
        }
    }

    /// MoCo v2: MLP head, τ 0.2.
    pub fn moco_v2() -> Self {
        Self {
            head: Head::Mlp,
            tau: 0.2,
            ..Self::moco_v1()
        }
    }

    /// Channels of the pooled backbone features.
    pub fn feature_channels(&self) -> usize {
        self.backbone.stage_channels()[3]
    }

    /// Rejects settings no run can use, naming the key under `prefix` (e.g. `model`).
    pub fn validate(&self, prefix: &str, batch_size: usize) -> Result<(), String> {
        self.backbone
            .validate()
            .map_err(|e| format!("{prefix}.backbone: {e}"))?;
        if self.dim == 0 {
            return Err(format!("{prefix}.dim = 0: expected at least 1"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "{prefix}.momentum = {}: expected 0 <= m < 1",
                self.momentum
            ));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return Err(format!("{prefix}.tau = {}: expected > 0", self.tau));
        }
        if self.queue == 0 || batch_size == 0 || !self.queue.is_multiple_of(batch_size) {
            return Err(format!(
                "{prefix}.queue = {}: expected a positive multiple of train.batch_size = {batch_size} (the queue is filled a batch at a time)",
                self.queue
            ));
        }
        if let KeyBn::Split { groups } = self.key_bn
            && (groups == 0 || !batch_size.is_multiple_of(groups))
        {
            return Err(format!(
                "{prefix}.key_bn.groups = {groups}: expected a divisor of train.batch_size = {batch_size}"
            ));
        }
        Ok(())
    }

    /// One encoder: backbone and head.
    pub fn init_encoder<B: Backend>(&self, device: &B::Device) -> Encoder<B> {
        let channels = self.feature_channels();
        let projection = match self.head {
            Head::Linear => Projection::Linear(LinearConfig::new(channels, self.dim).init(device)),
            Head::Mlp => Projection::Mlp(Mlp {
                hidden: LinearConfig::new(channels, channels).init(device),
                activation: Relu::new(),
                output: LinearConfig::new(channels, self.dim).init(device),
            }),
        };
        Encoder {
            backbone: self.backbone.clone().with_num_classes(None).init(device),
            fc: projection,
        }
    }

    /// Query and key encoders (the key an exact copy of the query's parameters) and a random queue.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Moco<B> {
        let encoder_q = self.init_encoder(device);
        let encoder_k = momentum_update(self.init_encoder(device), &encoder_q, 0.0);
        Moco {
            encoder_q,
            encoder_k,
            queue: Queue::new(self.dim, self.queue, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub hidden: Linear<B>,
    pub activation: Relu,
    pub output: Linear<B>,
}

/// Named `fc` in the encoder, as in the official state_dict (`encoder_q.fc.0`, `encoder_q.fc.2`).
// Two per model: the variants' size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Projection<B: Backend> {
    Linear(Linear<B>),
    Mlp(Mlp<B>),
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub backbone: ResNet<B>,
    pub fc: Projection<B>,
}

impl<B: Backend> Encoder<B> {
    /// `[B, 3, H, W] -> [B, dim]`, L2-normalised rows.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let features = self.backbone.forward_pooled(x); // [B, C]
        let z = match &self.fc {
            Projection::Linear(fc) => fc.forward(features),
            Projection::Mlp(mlp) => mlp
                .output
                .forward(mlp.activation.forward(mlp.hidden.forward(features))),
        };
        normalize_rows(z)
    }
}

/// Rows scaled to unit L2 norm (PyTorch's `F.normalize`, eps 1e-12).
pub fn normalize_rows<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = z.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    z / norm
}

#[derive(Module, Debug)]
pub struct Moco<B: Backend> {
    pub encoder_q: Encoder<B>,
    pub encoder_k: Encoder<B>,
    pub queue: Queue<B>,
}

impl<B: Backend> Moco<B> {
    /// The keys of `images` `[B, 3, H, W]` from the key encoder, without gradient: with
    /// `KeyBn::Split`, a `permutation` of the batch is encoded in `groups` sub-batches (each with its
    /// own BN statistics) and put back in order.
    pub fn keys(&self, images: Tensor<B, 4>, key_bn: KeyBn, permutation: &[usize]) -> Tensor<B, 2> {
        let device = images.device();
        let keys = match key_bn {
            KeyBn::None => self.encoder_k.forward(images),
            KeyBn::Split { groups } => {
                let n = permutation.len();
                let order = Tensor::<B, 1, Int>::from_ints(
                    permutation
                        .iter()
                        .map(|&i| i as i32)
                        .collect::<Vec<_>>()
                        .as_slice(),
                    &device,
                );
                let shuffled = images.select(0, order.clone());
                let parts: Vec<Tensor<B, 2>> = shuffled
                    .chunk(groups, 0)
                    .into_iter()
                    .map(|part| self.encoder_k.forward(part))
                    .collect();
                let encoded = Tensor::cat(parts, 0); // in shuffled order
                // Row i of `encoded` belongs to sample permutation[i]: scatter it back.
                let mut inverse = vec![0i32; n];
                for (i, &p) in permutation.iter().enumerate() {
                    inverse[p] = i as i32;
                }
                encoded.select(0, Tensor::from_ints(inverse.as_slice(), &device))
            }
        };
        keys.detach()
    }

    /// The key encoder moved towards the query encoder by `1 − m` (before the key forward, §2.1).
    pub fn momentum_step(self, m: f64) -> Self {
        let Moco {
            encoder_q,
            encoder_k,
            queue,
        } = self;
        Moco {
            encoder_k: momentum_update(encoder_k, &encoder_q, m),
            encoder_q,
            queue,
        }
    }
}
