//! Residual blocks, torchvision "v1.5" layout (`resnet-family.md` §2.2): stride on the 3×3.

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, ConvKind, Norm, NormKind};

/// The projection shortcut, PyTorch's `downsample = Sequential(conv1x1, norm)`; checkpoint keys
/// `downsample.0` / `downsample.1` map to `downsample.conv` / `downsample.norm`.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Norm<B>,
}

impl<B: Backend> Downsample<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// The residual path: the projection when the block has one, the input itself otherwise.
fn shortcut<B: Backend>(downsample: Option<&Downsample<B>>, x: &Tensor<B, 4>) -> Tensor<B, 4> {
    match downsample {
        Some(down) => down.forward(x.clone()),
        None => x.clone(),
    }
}

/// What one block is made of: its kinds and its place in the network.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockSpec {
    pub conv: ConvKind,
    pub norm: NormKind,
    pub in_channels: usize,
    pub planes: usize,
    pub stride: usize,
    /// Bottleneck only: the 3×3's channels, `floor(planes·base_width/64)·groups`.
    pub width: usize,
    pub groups: usize,
    pub zero_init_residual: bool,
}

impl BlockSpec {
    fn downsample<B: Backend>(
        &self,
        out_channels: usize,
        device: &B::Device,
    ) -> Option<Downsample<B>> {
        (self.stride != 1 || self.in_channels != out_channels).then(|| Downsample {
            conv: self
                .conv
                .conv(self.in_channels, out_channels, 1)
                .with_stride(self.stride)
                .init(device),
            norm: self.norm.init(out_channels, device),
        })
    }

    /// The norm that ends the residual branch, zeroed when the preset asks for it.
    fn last_norm<B: Backend>(&self, channels: usize, device: &B::Device) -> Norm<B> {
        let norm = self.norm.init(channels, device);
        if self.zero_init_residual {
            norm.zero_init_scale()
        } else {
            norm
        }
    }
}

/// Two 3×3 convolutions (ResNet-18/34), expansion 1.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    pub downsample: Option<Downsample<B>>,
}

/// 1×1 reduce, 3×3 (grouped for ResNeXt), 1×1 expand ×4 (ResNet-50 and up, ResNeXt).
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: Norm<B>,
    pub conv3: Conv2d<B>,
    pub bn3: Norm<B>,
    pub downsample: Option<Downsample<B>>,
}

// Blocks are built once per network; boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResidualBlock<B: Backend> {
    Basic(BasicBlock<B>),
    Bottleneck(Bottleneck<B>),
}

impl<B: Backend> BasicBlock<B> {
    pub const EXPANSION: usize = 1;

    pub(crate) fn new(spec: &BlockSpec, device: &B::Device) -> Self {
        let out = spec.planes * Self::EXPANSION;
        Self {
            conv1: spec
                .conv
                .conv(spec.in_channels, spec.planes, 3)
                .with_stride(spec.stride)
                .with_padding(1)
                .init(device),
            bn1: spec.norm.init(spec.planes, device),
            conv2: spec
                .conv
                .conv(spec.planes, out, 3)
                .with_padding(1)
                .init(device),
            bn2: spec.last_norm(out, device),
            downsample: spec.downsample(out, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = shortcut(self.downsample.as_ref(), &x);
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + shortcut)
    }
}

impl<B: Backend> Bottleneck<B> {
    pub const EXPANSION: usize = 4;

    pub(crate) fn new(spec: &BlockSpec, device: &B::Device) -> Self {
        let (width, out) = (spec.width, spec.planes * Self::EXPANSION);
        Self {
            conv1: spec.conv.conv(spec.in_channels, width, 1).init(device),
            bn1: spec.norm.init(width, device),
            conv2: spec
                .conv
                .conv(width, width, 3)
                .with_stride(spec.stride)
                .with_padding(1)
                .with_groups(spec.groups)
                .init(device),
            bn2: spec.norm.init(width, device),
            conv3: spec.conv.conv(width, out, 1).init(device),
            bn3: spec.last_norm(out, device),
            downsample: spec.downsample(out, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = shortcut(self.downsample.as_ref(), &x);
        let out = relu(self.bn1.forward(self.conv1.forward(x))); // [B, w, H, W]
        let out = relu(self.bn2.forward(self.conv2.forward(out))); // [B, w, H/s, W/s]
        let out = self.bn3.forward(self.conv3.forward(out)); // [B, 4p, H/s, W/s]
        relu(out + shortcut)
    }
}

impl<B: Backend> ResidualBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            ResidualBlock::Basic(block) => block.forward(x),
            ResidualBlock::Bottleneck(block) => block.forward(x),
        }
    }
}
