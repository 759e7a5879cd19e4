//! A 2-D convolution whose weight is optionally standardized (`ws.md` §2.1). Parameter names equal
//! PyTorch's (`weight`, `bias`) so official checkpoints map onto it key for key.

use burn::{
    config::Config,
    module::{Initializer, Module, Param},
    tensor::{Tensor, backend::Backend, ops::ConvOptions},
};

use crate::{ConvKind, WsVariant, standardize_weight};

#[derive(Config, Debug)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    #[config(default = 1)]
    pub stride: usize,
    #[config(default = 0)]
    pub padding: usize,
    #[config(default = 1)]
    pub dilation: usize,
    #[config(default = 1)]
    pub groups: usize,
    #[config(default = false)]
    pub bias: bool,
    #[config(default = "ConvKind::Plain")]
    pub kind: ConvKind,
    /// Defaults to kaiming-normal with fan_out, as every official ResNet code base initialises
    /// its convolutions (`resnet-family.md` §3.3).
    #[config(
        default = "Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }"
    )]
    pub initializer: Initializer,
}

#[derive(Module, Debug)]
pub struct Conv2d<B: Backend> {
    /// The raw weight `[C_out, C_in/groups, kH, kW]`: optimiser, weight decay and checkpoints act on
    /// it, never on its standardized form.
    pub weight: Param<Tensor<B, 4>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    /// `None`: a plain convolution.
    #[module(skip)]
    pub ws: Option<WsVariant>,
}

impl Conv2dConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2d<B> {
        assert!(
            self.in_channels.is_multiple_of(self.groups)
                && self.out_channels.is_multiple_of(self.groups),
            "conv channels {}→{} are not divisible by groups {}",
            self.in_channels,
            self.out_channels,
            self.groups
        );
        let k = self.kernel_size;
        let fan_in = self.in_channels / self.groups * k * k;
        // PyTorch counts fan_out over all output channels, groups or not (torch.nn.init).
        let fan_out = self.out_channels * k * k;
        let weight = self.initializer.init_with(
            [self.out_channels, self.in_channels / self.groups, k, k],
            Some(fan_in),
            Some(fan_out),
            device,
        );
        let bias = self.bias.then(|| {
            // PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            let bound = 1.0 / (fan_in as f64).sqrt();
            Initializer::Uniform {
                min: -bound,
                max: bound,
            }
            .init([self.out_channels], device)
        });
        Conv2d {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            ws: match self.kind {
                ConvKind::Plain => None,
                ConvKind::Ws { variant } => Some(variant),
            },
        }
    }
}

impl<B: Backend> Conv2d<B> {
    /// The weight the convolution uses: standardized for a WS conv, the raw weight otherwise.
    pub fn effective_weight(&self) -> Tensor<B, 4> {
        match self.ws {
            Some(variant) => standardize_weight(self.weight.val(), variant),
            None => self.weight.val(),
        }
    }

    /// `[B, C_in, H, W] -> [B, C_out, H', W']` (`core_ops`' kernels where the backend has them).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let options = ConvOptions::new(
            [self.stride; 2],
            [self.padding; 2],
            [self.dilation; 2],
            self.groups,
        );
        core_ops::conv2d(
            x,
            self.effective_weight(),
            self.bias.as_ref().map(|b| b.val()),
            options,
        )
    }
}
