//! The DeepLab2 backbones and the panoptic model against `axial-deeplab.md` §3.2, §3.3 and §8.5:
//! exact parameter counts, strides and shapes, offset rescaling, and one training step that lowers
//! the loss on a fixed batch.

use axial_deeplab::{
    AxialBackboneConfig, BACKBONE_PRESETS, DecoderConfig, EncoderConfig, PanopticDeepLabConfig,
    PanopticLossConfig, PanopticTargetBatch, StemKind, panoptic::resize_offsets,
};
use burn::{
    backend::{Autodiff, Flex},
    module::AutodiffModule,
    optim::{AdamConfig, GradientsParams, Optimizer},
    tensor::{Distribution, Int, Tensor, TensorData, Tolerance},
};
use core_nets::{ResNetConfig, count_parameters};

#[test]
fn deeplab2_backbone_parameter_counts_are_exact() {
    let device = Default::default();
    for preset in BACKBONE_PRESETS {
        let model = (preset.config)().init::<Flex>(&device);
        assert_eq!(
            count_parameters::<Flex, _>(&model),
            preset.parameters,
            "{}",
            preset.name
        );
    }
}

fn tiny_backbone(stem: StemKind) -> AxialBackboneConfig {
    AxialBackboneConfig {
        stem_width: 8,
        span: 33,
        ..AxialBackboneConfig::new(stem, [1, 1, 1, 1], 0.125)
    }
}

#[test]
fn backbone_strides_give_ceil_sizes_at_output_stride_16() {
    let device = Default::default();
    // 65 = 16·4 + 1: stem 33, res2 17, res3 9, res4 5, res5 5 (DeepLab2's `ceil(L/2)` strides).
    for stem in [StemKind::Resnet, StemKind::Inception] {
        let backbone = tiny_backbone(stem).init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([1, 3, 65, 49], Distribution::Normal(0.0, 1.0), &device);
        let dims: Vec<[usize; 4]> = backbone
            .forward_features(x)
            .iter()
            .map(|t| t.dims())
            .collect();
        assert_eq!(
            dims,
            [
                [1, 32, 17, 13],
                [1, 64, 9, 7],
                [1, 128, 5, 4],
                [1, 256, 5, 4]
            ],
            "{stem:?}"
        );
    }
    let os32 = AxialBackboneConfig {
        output_stride: 32,
        ..tiny_backbone(StemKind::Resnet)
    };
    let x = Tensor::<Flex, 4>::zeros([1, 3, 65, 65], &device);
    assert_eq!(
        os32.init::<Flex>(&device).forward_features(x)[3].dims(),
        [1, 256, 3, 3]
    );
    let bad = AxialBackboneConfig {
        width: 0.1,
        ..tiny_backbone(StemKind::Resnet)
    };
    assert!(bad.validate().unwrap_err().contains("multiple of 2·heads"));
}

fn tiny_decoder() -> DecoderConfig {
    DecoderConfig {
        aspp_channels: 16,
        semantic_channels: 16,
        semantic_low_level: [8, 8],
        semantic_head_channels: 16,
        instance_channels: 8,
        instance_low_level: [8, 4],
        instance_head_channels: 8,
        kernel: 5,
    }
}

#[test]
fn outputs_are_at_input_resolution_for_both_encoders() {
    let device = Default::default();
    let conv = ResNetConfig {
        layers: [1, 1, 1, 1],
        planes: [8, 16, 32, 64],
        stem_width: 8,
        output_stride: 16,
        num_classes: None,
        ..ResNetConfig::default()
    };
    for encoder in [
        EncoderConfig::Axial(tiny_backbone(StemKind::Resnet)),
        EncoderConfig::Resnet(conv),
    ] {
        let config = PanopticDeepLabConfig {
            encoder,
            decoder: tiny_decoder(),
            num_classes: 5,
        };
        let model = config.init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([2, 3, 33, 49], Distribution::Normal(0.0, 1.0), &device);
        let out = model.forward(x);
        assert_eq!(out.semantic.dims(), [2, 5, 33, 49]);
        assert_eq!(out.center.dims(), [2, 1, 33, 49]);
        assert_eq!(out.offset.dims(), [2, 2, 33, 49]);
    }
}

#[test]
fn offsets_are_rescaled_to_the_output_grid() {
    let device = Default::default();
    // A constant offset field (dy, dx) = (1, 2) on a 5×3 grid resized to 17×9:
    // dy · 16/4 = 4, dx · 8/2 = 8 everywhere (align-corner resize keeps constants).
    let field = Tensor::<Flex, 4>::from_data(
        TensorData::new([vec![1.0f32; 15], vec![2.0f32; 15]].concat(), [1, 2, 5, 3]),
        &device,
    );
    let out = resize_offsets(field, [17, 9]);
    let expected = TensorData::new(
        [vec![4.0f32; 17 * 9], vec![8.0f32; 17 * 9]].concat(),
        [1, 2, 17, 9],
    );
    out.to_data()
        .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-5));
}

#[test]
fn a_local_span_backbone_runs_any_size_and_trains() {
    type B = Autodiff<Flex>;
    let device = Default::default();
    // Span 5 on axes of up to 17 positions: the paper's local attention, memory linear in L.
    let config = AxialBackboneConfig {
        span: 5,
        local: true,
        ..tiny_backbone(StemKind::Inception)
    };
    let mut backbone = config.init::<B>(&device);
    // The block's last norm starts at γ = 0 (zero_init_residual), which would stop every gradient
    // into the attention; give the first block a unit γ.
    backbone.res2[0].bn2 = core_norm::NormKind::BATCH.init(32, &device);
    let x = Tensor::<B, 4>::random([2, 3, 33, 25], Distribution::Normal(0.0, 1.0), &device);
    let [res2, _, _, res5] = backbone.forward_features(x);
    assert_eq!((res2.dims(), res5.dims()), ([2, 32, 9, 7], [2, 256, 3, 2]));
    let loss = res5.square().mean();
    let grads = loss.backward();
    let table = backbone.res2[0].hight_block.relative.val();
    assert_eq!(table.dims()[1], 2 * 5 - 1);
    let grad = table.grad(&grads).expect("the table gets a gradient");
    let g: f32 = grad.abs().sum().into_scalar();
    assert!(g.is_finite() && g > 0.0, "{g}");
}

#[test]
fn a_few_adam_steps_lower_the_loss_on_a_fixed_batch() {
    type B = Autodiff<Flex>;
    let device = Default::default();
    let config = PanopticDeepLabConfig {
        encoder: EncoderConfig::Axial(tiny_backbone(StemKind::Resnet)),
        decoder: tiny_decoder(),
        num_classes: 3,
    };
    let mut model = config.init::<B>(&device);
    let (n, h, w) = (2, 17, 17);
    let x = Tensor::<B, 4>::random([n, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..n * h * w).map(|p| ((p % w) * 3 / w) as i64).collect();
    let targets = PanopticTargetBatch {
        semantic: Tensor::<B, 3, Int>::from_data(TensorData::new(labels, [n, h, w]), &device),
        semantic_weights: Tensor::ones([n, h, w], &device),
        center: Tensor::random([n, h, w], Distribution::Uniform(0.0, 1.0), &device),
        center_weights: Tensor::ones([n, h, w], &device),
        offsets: Tensor::random([n, 2, h, w], Distribution::Normal(0.0, 3.0), &device),
        offset_weights: Tensor::ones([n, h, w], &device),
    };
    let loss_config = PanopticLossConfig::default();
    let mut optimizer = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let out = model.forward(x.clone());
        let loss = loss_config.forward(out.semantic, out.center, out.offset, &targets);
        losses.push(loss.total.clone().into_scalar());
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses.windows(2).all(|p| p[1] < p[0]) && losses[7] < losses[0] * 0.95,
        "{losses:?}"
    );
    // The inference model runs too.
    let out = model.valid().forward(x.inner());
    assert_eq!(out.semantic.dims(), [n, 3, h, w]);
}
