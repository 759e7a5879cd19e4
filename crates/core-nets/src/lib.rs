//! Backbones shared by the vireo papers (spec `resnet-family.md`): torchvision-layout ResNet and
//! ResNeXt with pluggable convolution and normalisation ([`core_norm::ConvKind`],
//! [`core_norm::NormKind`]), so GN+WS, BCN+WS and BN ResNets are one network with two switches;
//! their classification steps for burn-train, exact parameter counting, and the loader of the
//! authors' PyTorch checkpoints. ELASTIC's two-path ResNeXt block and its resampling live here too
//! (one ResNet family; the `elastic` crate owns the models, FLOPs and experiment). VGG-16 features
//! (CompNet's backbone) in [`vgg`].

mod block;
mod classifier;
pub mod deeplab;
pub mod densenet;
pub mod dla;
mod import;
mod parameters;
pub mod resample;
mod resnet;
pub mod vgg;

pub use block::{
    BasicBlock, Bottleneck, Downsample, ResidualBlock, SeLayer, SeModule, TwoPathBottleneck,
};
pub use deeplab::{Aspp, AsppConfig, DEEPLAB_KEY_REMAPPING, DeepLab, DeepLabConfig};
pub use densenet::{DenseNet, DenseNetConfig, densenet_key_remapping};
pub use dla::{DLA_KEY_REMAPPING, Dla, DlaConfig};
pub use import::{
    ImportError, ImportReport, load_pytorch_checkpoint, load_pytorch_checkpoint_with,
    load_pytorch_resnet, read_safetensors_tensor,
};
pub use parameters::{count_parameters, independent_copy, trainable};
pub use resnet::{
    BlockKind, MODEL_PRESETS, ModelPreset, ResNet, ResNetConfig, ResNetFeatures, ResNetStyle,
};
pub use vgg::{
    VGG16_FEATURE_INDICES, Vgg16Features, VggConfig, VggCut, load_vgg16_features, vgg_key_remapping,
};
