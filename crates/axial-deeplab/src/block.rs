//! The axial block (`axial-deeplab.md` §2.3, the PyTorch repository's `AxialBlock`, expansion 2):
//! 1×1 conv down to the attention width, BN, ReLU; height attention; width attention (which pools
//! when the block is strided); ReLU — nothing between the two attention layers; 1×1 conv up, BN
//! with γ = 0 at init; residual sum and ReLU. Field names equal the repository's keys, including
//! its `hight_block` spelling. The DeepLab2 block (§2.2/§2.3) is the same graph at equal width; it
//! reads its tables at key − query and strides by decimating after each attention layer.

use burn::{
    module::Module,
    tensor::{Slice, Tensor, activation::relu, backend::Backend},
};
use core_attn::{AxialAttention, AxialAttentionConfig, Axis, RpeConvention, Span, StrideMode};
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
    /// DeepLab2 only: a strided block whose channels do not change subsamples its input
    /// (`x[::s, ::s]`) as the shortcut instead of projecting it.
    #[module(skip)]
    pub subsample: usize,
}

/// Where a block sits: channels, attention width and span, stride.
#[derive(Clone, Copy, Debug)]
pub struct AxialBlockSpec {
    pub in_channels: usize,
    /// Attention width; the block outputs `2 · planes` channels.
    pub planes: usize,
    pub span: Span,
    pub stride: usize,
    pub heads: usize,
    pub convention: RpeConvention,
    /// [`StrideMode::Pool`]: the width layer pools s×s (the repository); [`StrideMode::Decimate`]:
    /// both layers decimate their own axis (DeepLab2).
    pub stride_mode: StrideMode,
}

impl AxialBlockSpec {
    /// A block of the PyTorch repository (§2.1, §3.1).
    pub fn repository(in_channels: usize, planes: usize, span: usize, stride: usize) -> Self {
        Self {
            in_channels,
            planes,
            span: Span::Global { size: span },
            stride,
            heads: 8,
            convention: RpeConvention::Axpt,
            stride_mode: StrideMode::Pool,
        }
    }
}

impl<B: Backend> AxialBlock<B> {
    pub const EXPANSION: usize = 2;

    pub fn new(spec: &AxialBlockSpec, device: &B::Device) -> Self {
        let out = spec.planes * Self::EXPANSION;
        let conv1x1 = |cin, cout| ConvKind::Plain.conv(cin, cout, 1);
        let attention = |axis, stride| {
            AxialAttentionConfig::new(spec.planes, spec.planes, spec.span, axis)
                .with_heads(spec.heads)
                .with_stride(stride)
                .with_stride_mode(spec.stride_mode)
                .with_convention(spec.convention)
                .init(device)
        };
        let height_stride = match spec.stride_mode {
            StrideMode::Pool => 1,
            StrideMode::Decimate => spec.stride,
        };
        // The repository projects whenever the stride or the width changes; DeepLab2 only when
        // the width changes (else it subsamples).
        let project = match spec.stride_mode {
            StrideMode::Pool => spec.stride != 1 || spec.in_channels != out,
            StrideMode::Decimate => spec.in_channels != out,
        };
        let subsample = if project { 1 } else { spec.stride };
        let downsample = project.then(|| Downsample {
            conv: conv1x1(spec.in_channels, out)
                .with_stride(spec.stride)
                .init(device),
            norm: NormKind::BATCH.init(out, device),
        });
        Self {
            conv_down: conv1x1(spec.in_channels, spec.planes).init(device),
            bn1: NormKind::BATCH.init(spec.planes, device),
            hight_block: attention(Axis::Height, height_stride),
            width_block: attention(Axis::Width, spec.stride),
            conv_up: conv1x1(spec.planes, out).init(device),
            // zero_init_residual = True in the repository (pitfall 8).
            bn2: NormKind::BATCH.init(out, device).zero_init_scale(),
            downsample,
            subsample,
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
            None if self.subsample > 1 => {
                let step = Slice::new(0, None, self.subsample as isize);
                x.slice([Slice::full(), Slice::full(), step, step])
            }
            None => x,
        };
        relu(out + identity)
    }
}
