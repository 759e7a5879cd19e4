//! DenseNet-BC (Huang et al., CVPR 2017) as ELASTIC's `models/densenet.py` builds it
//! (`resnet-family.md` §2.6, `elastic.md` §2.3): a 7×7/2 stem with max-pool, dense blocks of
//! BN-ReLU-conv1×1-BN-ReLU-conv3×3 layers whose outputs are concatenated, transitions that halve
//! channels and resolution, a final BN, ReLU, global average and a linear classifier. The elastic
//! layer shares `norm1` and splits the bottleneck in two paths of half width, one at half
//! resolution (average-pool 2×2 → convs → bilinear ×2), and sums their new features.
//!
//! Keys follow the released layout except the layers of a block, which are `layers.{i-1}` here
//! for `denselayer{i}` ([`densenet_key_remapping`]).

use burn::{
    module::{Module, Param},
    nn::{Linear, LinearConfig},
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, ConvKind, Norm, NormKind};
use serde::{Deserialize, Serialize};

use crate::resample::{elastic_down, elastic_up};

/// Everything that decides a DenseNet-BC. Defaults: DenseNet-201.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenseNetConfig {
    pub growth_rate: usize,
    /// Layers per dense block: (6, 12, 48, 32) for DenseNet-201, (10, 20, 40, 30) elastic.
    pub block_config: [usize; 4],
    pub num_init_features: usize,
    pub bn_size: usize,
    /// Transitions keep `floor(channels · compression)`.
    pub compression: f64,
    /// ELASTIC's two-path layers in blocks 1–3. (The released code skips the resampling when a
    /// layer's input is 7×7, which at 224 px is the last block: here the last block never
    /// resamples, at any input size.)
    pub elastic: bool,
    pub num_classes: Option<usize>,
    pub norm: NormKind,
}

impl Default for DenseNetConfig {
    fn default() -> Self {
        Self {
            growth_rate: 32,
            block_config: [6, 12, 48, 32],
            num_init_features: 64,
            bn_size: 4,
            compression: 0.5,
            elastic: false,
            num_classes: Some(1000),
            norm: NormKind::BATCH,
        }
    }
}

/// One dense layer; the `_d` convs and norm exist in an elastic layer.
#[derive(Module, Debug)]
pub struct DenseLayer<B: Backend> {
    pub norm1: Norm<B>,
    pub conv1: Conv2d<B>,
    pub norm2: Norm<B>,
    pub conv2: Conv2d<B>,
    pub conv1_d: Option<Conv2d<B>>,
    pub norm2_d: Option<Norm<B>>,
    pub conv2_d: Option<Conv2d<B>>,
    /// Whether the `_d` path runs at half resolution (blocks 1–3).
    pub resample: bool,
}

impl<B: Backend> DenseLayer<B> {
    /// The layer's new features from the concatenation of the block's features so far.
    pub fn forward(&self, features: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = features.dims();
        let a = relu(self.norm1.forward(features));
        let full = self
            .conv2
            .forward(relu(self.norm2.forward(self.conv1.forward(a.clone()))));
        let (Some(conv1_d), Some(norm2_d), Some(conv2_d)) =
            (&self.conv1_d, &self.norm2_d, &self.conv2_d)
        else {
            return full;
        };
        let d = if self.resample { elastic_down(a) } else { a };
        let d = conv2_d.forward(relu(norm2_d.forward(conv1_d.forward(d))));
        let d = if self.resample {
            elastic_up(d, [h, w])
        } else {
            d
        };
        full + d
    }
}

#[derive(Module, Debug)]
pub struct DenseBlock<B: Backend> {
    pub layers: Vec<DenseLayer<B>>,
}

impl<B: Backend> DenseBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.layers.iter().fold(x, |features, layer| {
            let new = layer.forward(features.clone());
            Tensor::cat(vec![features, new], 1)
        })
    }
}

/// BN, ReLU, 1×1 conv, 2×2 average pool.
#[derive(Module, Debug)]
pub struct Transition<B: Backend> {
    pub norm: Norm<B>,
    pub conv: Conv2d<B>,
}

impl<B: Backend> Transition<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.conv.forward(relu(self.norm.forward(x)));
        burn::tensor::module::avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false)
    }
}

#[derive(Module, Debug)]
pub struct DenseFeatures<B: Backend> {
    pub conv0: Conv2d<B>,
    pub norm0: Norm<B>,
    pub denseblock1: DenseBlock<B>,
    pub transition1: Transition<B>,
    pub denseblock2: DenseBlock<B>,
    pub transition2: Transition<B>,
    pub denseblock3: DenseBlock<B>,
    pub transition3: Transition<B>,
    pub denseblock4: DenseBlock<B>,
    pub norm_final: Norm<B>,
}

#[derive(Module, Debug)]
pub struct DenseNet<B: Backend> {
    pub features: DenseFeatures<B>,
    pub classifier: Option<Linear<B>>,
}

impl<B: Backend> DenseNet<B> {
    /// The features after `norm_final`: `[B, C, H/32, W/32]`.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let f = &self.features;
        let x = relu(f.norm0.forward(f.conv0.forward(x)));
        let x = core_ops::max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let x = f.transition1.forward(f.denseblock1.forward(x));
        let x = f.transition2.forward(f.denseblock2.forward(x));
        let x = f.transition3.forward(f.denseblock3.forward(x));
        f.norm_final.forward(f.denseblock4.forward(x))
    }

    /// `[B, 3, H, W] -> [B, classes]`: ReLU, global average, the linear classifier.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = relu(self.forward_features(x));
        let [b, c, h, w] = x.dims();
        let pooled = x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
        self.classifier
            .as_ref()
            .expect("DenseNet built without a classifier")
            .forward(pooled)
    }
}

/// The released keys' `denselayer{i}` (1-based) as this module's `layers.{i-1}`, for blocks of up
/// to `max_layers` layers.
pub fn densenet_key_remapping(max_layers: usize) -> Vec<(String, String)> {
    (1..=max_layers)
        .map(|i| (format!(r"\.denselayer{i}\."), format!(".layers.{}.", i - 1)))
        .collect()
}

impl DenseNetConfig {
    pub fn densenet201() -> Self {
        Self::default()
    }

    pub fn densenet201_elastic() -> Self {
        Self {
            block_config: [10, 20, 40, 30],
            elastic: true,
            ..Self::default()
        }
    }

    fn conv<B: Backend>(&self, i: usize, o: usize, k: usize, device: &B::Device) -> Conv2d<B> {
        ConvKind::Plain
            .conv(i, o, k)
            .with_padding(k / 2)
            .init(device)
    }

    fn layer<B: Backend>(&self, c_in: usize, block: usize, device: &B::Device) -> DenseLayer<B> {
        let (k, bottleneck) = (self.growth_rate, self.bn_size * self.growth_rate);
        let width = if self.elastic {
            bottleneck / 2
        } else {
            bottleneck
        };
        let half = self.elastic.then_some(width);
        DenseLayer {
            norm1: self.norm.init(c_in, device),
            conv1: self.conv(c_in, width, 1, device),
            norm2: self.norm.init(width, device),
            conv2: self.conv(width, k, 3, device),
            conv1_d: half.map(|w| self.conv(c_in, w, 1, device)),
            norm2_d: half.map(|w| self.norm.init(w, device)),
            conv2_d: half.map(|w| self.conv(w, k, 3, device)),
            resample: self.elastic && block < 3,
        }
    }

    /// Builds the network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DenseNet<B> {
        let mut channels = self.num_init_features;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (b, &layers) in self.block_config.iter().enumerate() {
            let block = DenseBlock {
                layers: (0..layers)
                    .map(|i| self.layer(channels + i * self.growth_rate, b, device))
                    .collect(),
            };
            blocks.push(block);
            channels += layers * self.growth_rate;
            if b < 3 {
                let out = (channels as f64 * self.compression) as usize;
                transitions.push(Transition {
                    norm: self.norm.init(channels, device),
                    conv: self.conv(channels, out, 1, device),
                });
                channels = out;
            }
        }
        let mut blocks = blocks.into_iter();
        let mut transitions = transitions.into_iter();
        let mut block = || blocks.next().expect("four blocks");
        let mut transition = || transitions.next().expect("three transitions");
        let features = DenseFeatures {
            conv0: ConvKind::Plain
                .conv(3, self.num_init_features, 7)
                .with_stride(2)
                .with_padding(3)
                .init(device),
            norm0: self.norm.init(self.num_init_features, device),
            denseblock1: block(),
            transition1: transition(),
            denseblock2: block(),
            transition2: transition(),
            denseblock3: block(),
            transition3: transition(),
            denseblock4: block(),
            norm_final: self.norm.init(channels, device),
        };
        DenseNet {
            features,
            classifier: self.num_classes.map(|classes| {
                let mut fc = LinearConfig::new(channels, classes).init(device);
                // The released init zeroes the classifier's bias.
                fc.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
                fc
            }),
        }
    }
}
