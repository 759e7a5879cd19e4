//! The axial block (`axial-deeplab.md` §2.3, the PyTorch repository's `AxialBlock`, expansion 2):
//! 1×1 conv down to the attention width, BN, ReLU; height attention; width attention (which pools
//! when the block is strided); ReLU — nothing between the two attention layers; 1×1 conv up, BN
//! with γ = 0 at init; residual sum and ReLU. Field names equal the repository's keys, including
//! its `hight_block` spelling.

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_attn::{AxialAttention, AxialAttentionConfig, Axis, Span};
use core_nets::Downsample;
use core_norm::{ConvKind, Norm, NormKind};

#[derive(Module, Debug)]
pub struct AxialBlock<B: Backend> {
    pub conv_down: core_norm::Conv2d<B>,
    pub bn1: Norm<B>,
    pub hight_block: AxialAttention<B>,
    pub width_block: AxialAttention<B>,
    pub conv_up: core_norm::Conv2d<B>,
    pub bn2: Norm<B>,
    pub downsample: Option<Downsample<B>>,
}

/// Where a block sits: channels, attention width and span, stride.
#[derive(Clone, Copy, Debug)]
pub struct AxialBlockSpec {
    pub in_channels: usize,
    /// Attention width; the block outputs `2 · planes` channels.
    pub planes: usize,
    pub span: usize,
    pub stride: usize,
    pub heads: usize,
}

impl<B: Backend> AxialBlock<B> {
    pub const EXPANSION: usize = 2;

    pub fn new(spec: &AxialBlockSpec, device: &B::Device) -> Self {
        let out = spec.planes * Self::EXPANSION;
        let conv1x1 = |cin, cout| ConvKind::Plain.conv(cin, cout, 1);
        let attention = |axis, stride| {
            AxialAttentionConfig::new(
                spec.planes,
                spec.planes,
                Span::Global { size: spec.span },
                axis,
            )
            .with_heads(spec.heads)
            .with_stride(stride)
            .init(device)
        };
        let downsample = (spec.stride != 1 || spec.in_channels != out).then(|| Downsample {
            conv: conv1x1(spec.in_channels, out)
                .with_stride(spec.stride)
                .init(device),
            norm: NormKind::BATCH.init(out, device),
        });
        Self {
            conv_down: conv1x1(spec.in_channels, spec.planes).init(device),
            bn1: NormKind::BATCH.init(spec.planes, device),
            hight_block: attention(Axis::Height, 1),
            width_block: attention(Axis::Width, spec.stride),
            conv_up: conv1x1(spec.planes, out).init(device),
            // zero_init_residual = True in the repository (pitfall 8).
            bn2: NormKind::BATCH.init(out, device).zero_init_scale(),
            downsample,
        }
    }

    /// `[N, C_in, H, W] -> [N, 2·planes, H/s, W/s]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = relu(self.bn1.forward(self.conv_down.forward(x.clone())));
        let out = self.hight_block.forward(out);
        let out = relu(self.width_block.forward(out));
        let out = self.bn2.forward(self.conv_up.forward(out));
        let identity = match &self.downsample {
            Some(down) => down.forward(x),
            None => x,
        };
        relu(out + identity)
    }
}
