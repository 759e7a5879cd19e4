//! The conv-stem Axial-ResNet of the PyTorch repository (`axial-deeplab.md` §3.1): 7×7/2 stem of
//! `int(64·s)` channels, BN, ReLU, 3×3/2 max-pool; four stages of [`AxialBlock`]s with attention
//! widths `int(128·s)`, `int(256·s)`, `int(512·s)`, `int(1024·s)` and spans 56, 56→28, 28→14, 14→7
//! (the first block of a strided stage attends at its input resolution and pools afterwards);
//! global average pooling and a linear classifier. Input 224×224 (spans equal the axis lengths).

use burn::{
    config::Config,
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{ConvKind, Norm, NormKind};

use crate::block::{AxialBlock, AxialBlockSpec};

#[derive(Config, Debug)]
pub struct AxialResNetConfig {
    /// Blocks per stage: [1, 2, 4, 1] (26 layers) or [3, 4, 6, 3] (50 layers).
    pub layers: [usize; 4],
    /// Width multiplier s: 0.5 (S), 0.75 (M), 1.0 (L).
    pub width: f64,
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Attention span of the first stage (the axis length after the stem: 56 for 224 inputs).
    #[config(default = 56)]
    pub span: usize,
    #[config(default = 8)]
    pub heads: usize,
}

impl AxialResNetConfig {
    /// Axial-ResNet-26-S, the released `axial26s.pth` (5,944,936 parameters).
    pub fn axial26s() -> Self {
        Self::new([1, 2, 4, 1], 0.5)
    }
    pub fn axial50s() -> Self {
        Self::new([3, 4, 6, 3], 0.5)
    }
    pub fn axial50m() -> Self {
        Self::new([3, 4, 6, 3], 0.75)
    }
    pub fn axial50l() -> Self {
        Self::new([3, 4, 6, 3], 1.0)
    }

    /// `int(c · s)`, the repository's rounding.
    fn scaled(&self, channels: usize) -> usize {
        (channels as f64 * self.width) as usize
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> AxialResNet<B> {
        let stem = self.scaled(64);
        let mut in_channels = stem;
        let mut span = self.span;
        let mut stages = [128, 256, 512, 1024]
            .into_iter()
            .enumerate()
            .map(|(stage, planes)| {
                let planes = self.scaled(planes);
                let stride = if stage == 0 { 1 } else { 2 };
                (0..self.layers[stage])
                    .map(|b| {
                        let spec = AxialBlockSpec {
                            heads: self.heads,
                            ..AxialBlockSpec::repository(
                                in_channels,
                                planes,
                                span,
                                if b == 0 { stride } else { 1 },
                            )
                        };
                        in_channels = planes * AxialBlock::<B>::EXPANSION;
                        // The blocks after a strided first block attend at the pooled resolution.
                        if b == 0 && stride > 1 {
                            span /= stride;
                        }
                        AxialBlock::new(&spec, device)
                    })
                    .collect::<Vec<_>>()
            });
        let mut next = || stages.next().expect("four stages");
        let (layer1, layer2, layer3, layer4) = (next(), next(), next(), next());
        AxialResNet {
            conv1: ConvKind::Plain
                .conv(3, stem, 7)
                .with_stride(2)
                .with_padding(3)
                .init(device),
            bn1: NormKind::BATCH.init(stem, device),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(in_channels, self.num_classes).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct AxialResNet<B: Backend> {
    pub conv1: core_norm::Conv2d<B>,
    pub bn1: Norm<B>,
    pub layer1: Vec<AxialBlock<B>>,
    pub layer2: Vec<AxialBlock<B>>,
    pub layer3: Vec<AxialBlock<B>>,
    pub layer4: Vec<AxialBlock<B>>,
    pub fc: Linear<B>,
}

impl<B: Backend> AxialResNet<B> {
    /// The four stage outputs: `[N, 2·planes_i, 56/2^i, 56/2^i]` for a 224 input.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> [Tensor<B, 4>; 4] {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = core_ops::max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let run = |blocks: &[AxialBlock<B>], x| blocks.iter().fold(x, |x, b| b.forward(x));
        let s1 = run(&self.layer1, x);
        let s2 = run(&self.layer2, s1.clone());
        let s3 = run(&self.layer3, s2.clone());
        let s4 = run(&self.layer4, s3.clone());
        [s1, s2, s3, s4]
    }

    /// `[N, 3, 224, 224] -> [N, classes]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [_, _, _, last] = self.forward_features(x);
        let [n, c, h, w] = last.dims();
        let pooled = last.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]);
        self.fc.forward(pooled)
    }
}

/// Loads a checkpoint of the PyTorch repository's layout (`axial-deeplab.md` §5: its keys, including
/// `hight_block`; plain, `{'net': …}` or `{'state_dict': …}`, with or without `module.`;
/// `flatten_index` and `num_batches_tracked` ignored) into `model`, which must have its shape.
pub fn load_axial_checkpoint<B: Backend>(
    model: AxialResNet<B>,
    path: &std::path::Path,
    model_name: &str,
) -> Result<(AxialResNet<B>, core_nets::ImportReport), core_nets::ImportError> {
    core_nets::load_pytorch_checkpoint(model, path, model_name)
}

/// A named Axial-ResNet that `vireo models` lists with its exact parameter count.
pub struct AxialPreset {
    pub name: &'static str,
    pub config: fn() -> AxialResNetConfig,
    /// The repository's count (`axial-deeplab.md` §3.1).
    pub parameters: usize,
}

pub const AXIAL_PRESETS: &[AxialPreset] = &[
    AxialPreset {
        name: "axial26s",
        config: AxialResNetConfig::axial26s,
        parameters: 5_944_936,
    },
    AxialPreset {
        name: "axial50s",
        config: AxialResNetConfig::axial50s,
        parameters: 11_586_216,
    },
    AxialPreset {
        name: "axial50m",
        config: AxialResNetConfig::axial50m,
        parameters: 25_179_400,
    },
    AxialPreset {
        name: "axial50l",
        config: AxialResNetConfig::axial50l,
        parameters: 43_973_480,
    },
];
