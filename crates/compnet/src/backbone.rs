//! The features under the compositional models (`compnet.md` §2.2): VGG-16 cut at pool5 or pool4
//! (the released models, the default), or — the released code's untested option — a ResNet cut
//! after its last stage (`last`) or the one before (`second`), here any core-nets ResNet
//! (torchvision's ResNet-50/ResNeXt-50 weights load through core-nets). Frozen under CN-vMF; a
//! ResNet's batch norms then use their running statistics (the frozen network runs outside the
//! autodiff graph, [`crate::model::CompNet`]).

use burn::{
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use core_nets::{
    ResNet, ResNetConfig,
    vgg::{Vgg16Features, VggConfig},
};
use serde::{Deserialize, Serialize};

/// Where a ResNet's features end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResNetCut {
    /// After layer4 (stride 32).
    #[default]
    Last,
    /// After layer3 (stride 16).
    Second,
}

/// A ResNet backbone: the network (its classifier unused) and the cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetBackbone {
    pub net: ResNetConfig,
    #[serde(default)]
    pub cut: ResNetCut,
}

/// Which features: VGG (`vgg`), or a ResNet when `resnet` is given.
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneChoice<'a> {
    pub vgg: &'a VggConfig,
    pub resnet: Option<&'a ResNetBackbone>,
}

impl BackboneChoice<'_> {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Backbone<B> {
        match self.resnet {
            Some(r) => Backbone::ResNet(ResNetTrunk {
                net: r.net.clone().with_num_classes(None).init(device),
                second: r.cut == ResNetCut::Second,
            }),
            None => Backbone::Vgg(self.vgg.init(device)),
        }
    }

    /// The network with ImageNet weights from a torchvision file: `vgg16` (`features.*`) or a
    /// ResNet of `resnet.net`'s shape (its 1000-class classifier read, then dropped).
    pub fn load_pretrained<B: Backend>(
        &self,
        file: &std::path::Path,
        device: &B::Device,
    ) -> anyhow::Result<Backbone<B>> {
        Ok(match self.resnet {
            Some(r) => {
                let net = r.net.clone().with_num_classes(Some(1000)).init(device);
                let (mut net, _) =
                    core_nets::load_pytorch_resnet(net, file, "the ResNet backbone")?;
                net.fc = None;
                Backbone::ResNet(ResNetTrunk {
                    net,
                    second: r.cut == ResNetCut::Second,
                })
            }
            None => Backbone::Vgg(core_nets::vgg::load_vgg16_features(self.vgg, file, device)?.0),
        })
    }

    /// Channels of the feature map.
    pub fn out_channels(&self) -> usize {
        match self.resnet {
            Some(r) => {
                let channels = r.net.stage_channels();
                channels[if r.cut == ResNetCut::Second { 2 } else { 3 }]
            }
            None => self.vgg.out_channels(),
        }
    }

    /// "VGG-16 pool4 with widths / 8" or "ResNet [3, 4, 6, 3] (bottleneck) to layer4".
    pub fn describe(&self) -> String {
        match self.resnet {
            Some(r) => format!(
                "ResNet {:?} ({:?}) to {}",
                r.net.layers,
                r.net.block,
                if r.cut == ResNetCut::Second {
                    "layer3"
                } else {
                    "layer4"
                }
            ),
            None => format!(
                "VGG-16 {}{}",
                match self.vgg.cut {
                    core_nets::vgg::VggCut::Pool5 => "pool5",
                    core_nets::vgg::VggCut::Pool4 => "pool4",
                },
                if self.vgg.width_divisor > 1 {
                    format!(" with widths / {}", self.vgg.width_divisor)
                } else {
                    String::new()
                }
            ),
        }
    }
}

/// A ResNet cut after layer4 or layer3.
#[derive(Module, Debug)]
pub struct ResNetTrunk<B: Backend> {
    pub net: ResNet<B>,
    #[module(skip)]
    pub second: bool,
}

/// The backbone network (one per model, never in a collection: the size difference between the
/// variants costs nothing).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone<B: Backend> {
    Vgg(Vgg16Features<B>),
    ResNet(ResNetTrunk<B>),
}

impl<B: Backend> Backbone<B> {
    /// Features `[B, D, H', W']` of images `[B, 3, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Backbone::Vgg(vgg) => vgg.forward(x),
            Backbone::ResNet(trunk) => {
                let net = &trunk.net;
                let run = |blocks: &[core_nets::ResidualBlock<B>], x: Tensor<B, 4>| {
                    blocks.iter().fold(x, |x, b| b.forward_conditioned(x, None))
                };
                let x = run(&net.layer1, net.forward_stem(x));
                let x = run(&net.layer3, run(&net.layer2, x));
                if trunk.second { x } else { run(&net.layer4, x) }
            }
        }
    }
}
