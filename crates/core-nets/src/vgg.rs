//! VGG-16 features (Simonyan & Zisserman 2015) as torchvision builds `vgg16().features`
//! (`resnet-family.md` §2.7, `compnet.md` §2.2): 3×3 convolutions with bias and padding 1, each
//! followed by ReLU, 2×2/2 max-pools after the 2nd, 4th, 7th, 10th and 13th convolution. CompNet's
//! backbone, frozen: cut at pool5 (14,714,688 parameters) or pool4 (`features[0:24]`, 7,635,264).
//! Checkpoint keys `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}` (torchvision) or
//! `backbone.{…}` (CompNet's `best.pth`) map to `convs.{0..12}` ([`vgg_key_remapping`]).

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, Conv2dConfig};
use serde::{Deserialize, Serialize};

/// Output channels of VGG-16's 13 convolutions.
const CHANNELS: [usize; 13] = [
    64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
];

/// The convolutions (0-based) a max-pool follows.
const POOL_AFTER: [usize; 5] = [1, 3, 6, 9, 12];

/// torchvision's `features` index of each convolution.
pub const VGG16_FEATURE_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

/// Where the features end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VggCut {
    /// All of `features`: 512 channels at 1/32 resolution.
    #[default]
    Pool5,
    /// `features[0:24]`: 512 channels at 1/16 resolution.
    Pool4,
}

impl VggCut {
    /// Convolutions kept.
    pub fn convs(self) -> usize {
        match self {
            VggCut::Pool5 => 13,
            VggCut::Pool4 => 10,
        }
    }

    /// The feature map's stride.
    pub fn stride(self) -> usize {
        match self {
            VggCut::Pool5 => 32,
            VggCut::Pool4 => 16,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggConfig {
    pub cut: VggCut,
    /// Channel widths divided by this (1: VGG-16; small widths for the embedded data's smoke runs).
    pub width_divisor: usize,
}

impl VggConfig {
    pub fn vgg16(cut: VggCut) -> Self {
        Self {
            cut,
            width_divisor: 1,
        }
    }

    /// Output channels of each kept convolution.
    fn widths(&self) -> Vec<usize> {
        let divisor = self.width_divisor.max(1);
        CHANNELS[..self.cut.convs()]
            .iter()
            .map(|c| (c / divisor).max(1))
            .collect()
    }

    /// Channels of the feature map.
    pub fn out_channels(&self) -> usize {
        *self.widths().last().expect("at least one convolution")
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Vgg16Features<B> {
        let mut in_channels = 3;
        let convs = self
            .widths()
            .into_iter()
            .map(|out| {
                let conv = Conv2dConfig::new(in_channels, out, 3)
                    .with_padding(1)
                    .with_bias(true)
                    .init(device);
                in_channels = out;
                conv
            })
            .collect();
        Vgg16Features { convs }
    }
}

/// VGG-16 `features` up to the configured pool.
#[derive(Module, Debug)]
pub struct Vgg16Features<B: Backend> {
    pub convs: Vec<Conv2d<B>>,
}

impl<B: Backend> Vgg16Features<B> {
    /// `[B, 3, H, W] -> [B, 512, H/s, W/s]` (floor division per pool, as PyTorch's max-pool).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.convs.iter().enumerate().fold(x, |x, (i, conv)| {
            let x = relu(conv.forward(x));
            if POOL_AFTER.contains(&i) {
                core_ops::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
            } else {
                x
            }
        })
    }
}

/// `(pattern, replacement)` pairs mapping torchvision's `features.{i}` and CompNet's `backbone.{i}`
/// to `convs.{j}`.
pub fn vgg_key_remapping() -> Vec<(String, String)> {
    VGG16_FEATURE_INDICES
        .iter()
        .enumerate()
        .map(|(j, i)| {
            (
                format!(r"^(module\.)?(features|backbone)\.{i}\."),
                format!("convs.{j}."),
            )
        })
        .collect()
}

impl<B: Backend> Vgg16Features<B> {
    /// The first `cut`'s convolutions of these features (pool4 of a pool5 network).
    pub fn cut(self, cut: VggCut) -> Self {
        let mut convs = self.convs;
        convs.truncate(cut.convs());
        Self { convs }
    }
}

/// torchvision's `vgg16().features` weights (`features.*`, or CompNet's `backbone.*`, plain or
/// wrapped) into VGG-16 features cut as `config` says: the whole file is read (every tensor checked
/// against the full network), then cut — so pool4 loads from the same ImageNet file as pool5.
pub fn load_vgg16_features<B: Backend>(
    config: &VggConfig,
    path: &std::path::Path,
    device: &B::Device,
) -> Result<(Vgg16Features<B>, crate::ImportReport), crate::ImportError> {
    let remaps = vgg_key_remapping();
    let remaps: Vec<(&str, &str)> = remaps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let full = VggConfig {
        cut: VggCut::Pool5,
        ..config.clone()
    };
    let (features, report) = crate::load_pytorch_checkpoint_with(
        full.init::<B>(device),
        path,
        "VGG-16 features (torchvision layout)",
        &remaps,
    )?;
    Ok((features.cut(config.cut), report))
}
