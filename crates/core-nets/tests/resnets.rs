//! ResNet structure (`resnet-family.md` §3, §8) and the official-checkpoint loader against the
//! PyTorch fixtures made by `fixtures/make_fixtures.py`.

use std::path::{Path, PathBuf};

use burn::{
    backend::Autodiff,
    module::AutodiffModule,
    store::{ModuleStore, SafetensorsStore},
    tensor::{Distribution, Tensor, TensorData, Tolerance},
};
use core_nets::{
    BlockKind, ImportError, MODEL_PRESETS, ResNet, ResNetConfig, count_parameters,
    load_pytorch_resnet,
};
use core_norm::{BatchStatistics, ConvKind, NormKind, WsVariant};

/// The CPU backend; `--features test-wgpu` runs the same tests on wgpu (docs/backends.md).
#[cfg(not(feature = "test-wgpu"))]
type B = burn::backend::Flex;
#[cfg(feature = "test-wgpu")]
type B = burn::backend::Wgpu;
type AD = Autodiff<B>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(fixture("tiny_resnets.safetensors"));
    store
        .get_snapshot(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .to_data()
        .unwrap()
}

#[test]
fn parameter_counts_equal_the_official_models() {
    // resnet-family.md §3.1, ws.md §3, bcn.md §3: exact integers.
    let expected = [
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnext50_32x4d", 25_028_904),
        ("resnext101_32x4d", 44_177_704),
        ("resnet50_gn_ws", 25_557_032),
        ("resnet101_gn_ws", 44_549_160),
        ("resnext50_gn_ws", 25_028_904),
        ("resnext101_gn_ws", 44_177_704),
        ("resnet50_bcn_ws", 25_560_424),
        ("resnet101_bcn_ws", 44_555_816),
        ("resnext50_bcn_ws", 25_032_296),
        ("resnext101_bcn_ws", 44_184_360),
        // torchvision
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet152", 60_192_808),
        // Cadene's SE-ResNet-50 (Caffe layout; SAKE's ImageNet teacher before conversion).
        ("se_resnet50", 28_088_024),
    ];
    let device = Default::default();
    for (name, count) in expected {
        let preset = MODEL_PRESETS
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("preset {name}"));
        let model = (preset.config)().init::<B>(&device);
        assert_eq!(count_parameters::<B, _>(&model), count, "{name}");
    }
}

#[test]
fn stage_shapes_at_224() {
    // resnet-family.md §3.2 (ws.md §8.5): stem 64×56², stages 256×56², 512×28², 1024×14², 2048×7².
    let device = Default::default();
    let model = ResNetConfig::resnet50().gn_ws().init::<B>(&device);
    let x = Tensor::<B, 4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let features = model.forward_features(x.clone());
    assert_eq!(features.stem.dims(), [1, 64, 56, 56]);
    let dims: Vec<_> = features.stages.iter().map(|s| s.dims()).collect();
    assert_eq!(
        dims,
        [
            [1, 256, 56, 56],
            [1, 512, 28, 28],
            [1, 1024, 14, 14],
            [1, 2048, 7, 7]
        ]
    );
    let logits = model.forward(x);
    assert_eq!(logits.dims(), [1, 1000]);
    assert!(logits.into_data().iter::<f32>().all(f32::is_finite));
}

#[test]
fn every_block_kind_trains_at_tiny_size() {
    // Forward shape, finite output and a backward pass for each (block, conv, norm) combination.
    let device = Default::default();
    let norms = [
        NormKind::BATCH,
        NormKind::group(4),
        NormKind::batch_channel(4, BatchStatistics::Batch { momentum: 0.1 }),
        NormKind::batch_channel(4, BatchStatistics::Estimated { rate: 0.01 }),
        NormKind::Identity,
    ];
    for block in [BlockKind::Basic, BlockKind::Bottleneck] {
        for norm in norms {
            let config = ResNetConfig {
                block,
                layers: [1, 1, 1, 1],
                planes: [8, 8, 16, 16],
                stem_width: 8,
                small_stem: true,
                groups: if block == BlockKind::Bottleneck { 2 } else { 1 },
                base_width: 64,
                num_classes: Some(3),
                conv: ConvKind::Ws {
                    variant: WsVariant::OfficialTorch,
                },
                norm,
                ..ResNetConfig::default()
            };
            let model = config.init::<AD>(&device);
            let x =
                Tensor::<AD, 4>::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
            let logits = model.forward(x);
            assert_eq!(logits.dims(), [2, 3]);
            let grads = logits.sum().backward();
            let grad = model.conv1.weight.grad(&grads).expect("stem gradient");
            assert!(
                grad.into_data().iter::<f32>().all(f32::is_finite),
                "{block:?} {norm:?}"
            );
        }
    }
}

#[test]
fn bcn_blocks_start_as_relu_of_the_shortcut() {
    // bcn.md §8.5: with the forced zero-init every residual branch outputs β_g = 0 at init, so a
    // block without projection returns relu(x) exactly.
    let device = Default::default();
    let model = ResNetConfig::resnet50()
        .bcn_ws()
        .with_num_classes(None)
        .init::<AD>(&device);
    let x = Tensor::<AD, 4>::random([2, 256, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let block = &model.layer1[1];
    let y = block.forward(x.clone());
    y.into_data()
        .assert_eq(&burn::tensor::activation::relu(x).into_data(), true);
}

fn tiny_config(norm: NormKind, variant: WsVariant) -> ResNetConfig {
    // The fixture's architecture: make_fixtures.py / tiny_resnets.json.
    ResNetConfig {
        block: BlockKind::Bottleneck,
        layers: [1, 1, 1, 1],
        planes: [2, 4, 8, 16],
        stem_width: 8,
        num_classes: Some(5),
        conv: ConvKind::Ws { variant },
        norm,
        ..ResNetConfig::default()
    }
}

#[test]
fn gn_ws_checkpoint_loads_and_matches_pytorch() {
    // Plain state_dict with `module.` keys (the published *-GN-WS.pth.tar layout).
    let device = Default::default();
    let model = tiny_config(NormKind::group(2), WsVariant::OfficialTorch).init::<B>(&device);
    let (model, report) =
        load_pytorch_resnet(model, &fixture("gn_ws_tiny.pth.tar"), "tiny GN+WS").unwrap();
    assert_eq!(report.applied, 50);
    let x = Tensor::<B, 4>::from_data(reference("x"), &device);
    let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
    model
        .forward(x.clone())
        .into_data()
        .assert_approx_eq::<f32>(&reference("gn_ws.logits"), tolerance);
    let features = model.forward_features(x);
    features.stages[3]
        .clone()
        .into_data()
        .assert_approx_eq::<f32>(&reference("gn_ws.layer4"), tolerance);
    features
        .stem
        .into_data()
        .assert_approx_eq::<f32>(&reference("gn_ws.stem"), tolerance);
}

#[test]
fn bcn_ws_checkpoint_loads_and_matches_pytorch_in_eval_and_train_mode() {
    // `{'state_dict': {'module.…'}}` with `pbn.*` buffers (the BCN repo layout).
    let device = Default::default();
    let bcn = NormKind::batch_channel(2, BatchStatistics::Batch { momentum: 0.1 });
    let path = fixture("bcn_ws_tiny.pth.tar");
    let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
    let x = Tensor::<B, 4>::from_data(reference("x"), &device);

    let model = tiny_config(bcn, WsVariant::BcnRepo).init::<B>(&device);
    let (model, report) = load_pytorch_resnet(model, &path, "tiny BCN+WS").unwrap();
    // 16 convs + 16 BCN × 6 (2 per-group + 4 pbn) + fc × 2; num_batches_tracked ignored.
    assert_eq!((report.applied, report.ignored.len()), (114, 16));
    model
        .forward(x.clone())
        .into_data()
        .assert_approx_eq::<f32>(&reference("bcn_ws.eval_logits"), tolerance);

    let model: ResNet<AD> = load_pytorch_resnet(
        tiny_config(bcn, WsVariant::BcnRepo).init::<AD>(&device),
        &path,
        "tiny",
    )
    .unwrap()
    .0;
    let logits = model.forward(Tensor::from_data(reference("x"), &device));
    logits
        .into_data()
        .assert_approx_eq::<f32>(&reference("bcn_ws.train_logits"), tolerance);
    let model = model.valid();
    let core_norm::Norm::BatchChannel(stem) = &model.bn1 else {
        panic!("BCN stem")
    };
    stem.pbn
        .running_mean
        .value()
        .into_data()
        .assert_approx_eq::<f32>(&reference("bcn_ws.train_running_mean_bn1"), tolerance);
    stem.pbn
        .running_var
        .value()
        .into_data()
        .assert_approx_eq::<f32>(&reference("bcn_ws.train_running_var_bn1"), tolerance);
}

#[test]
fn the_wrong_ws_variant_is_detectable() {
    // The fixture's tolerance check is meaningful: BcnRepo weights run with OfficialTorch differ.
    let device = Default::default();
    let model = tiny_config(NormKind::group(2), WsVariant::BcnRepo).init::<B>(&device);
    let (model, _) = load_pytorch_resnet(model, &fixture("gn_ws_tiny.pth.tar"), "tiny").unwrap();
    let logits = model.forward(Tensor::from_data(reference("x"), &device));
    let diff = logits
        .into_data()
        .iter::<f32>()
        .zip(reference("gn_ws.logits").iter::<f32>())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff > 1e-4, "{diff}");
}

#[test]
fn foreign_truncated_and_missing_checkpoints_are_named() {
    let device = Default::default();
    let model = || tiny_config(NormKind::group(2), WsVariant::OfficialTorch).init::<B>(&device);

    let err = load_pytorch_resnet(
        model(),
        Path::new("/nonexistent/R-50-GN-WS.pth.tar"),
        "tiny",
    )
    .unwrap_err();
    assert!(
        matches!(err, ImportError::NotFound(_)) && err.to_string().contains("R-50-GN-WS.pth.tar"),
        "{err}"
    );

    // The BCN checkpoint is foreign to a GN model: extra `pbn.*` keys and shape mismatches.
    let err = load_pytorch_resnet(model(), &fixture("bcn_ws_tiny.pth.tar"), "tiny GN+WS")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tiny GN+WS") && err.contains("pbn"), "{err}");

    // A wider model: every shape differs.
    let wide = ResNetConfig {
        planes: [4, 8, 16, 32],
        ..tiny_config(NormKind::group(2), WsVariant::OfficialTorch)
    }
    .init::<B>(&device);
    let err = load_pytorch_resnet(wide, &fixture("gn_ws_tiny.pth.tar"), "wide")
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.pth.tar");
    let bytes = std::fs::read(fixture("gn_ws_tiny.pth.tar")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_pytorch_resnet(model(), &truncated, "tiny").unwrap_err();
    assert!(
        matches!(err, ImportError::Unreadable { .. })
            && err.to_string().contains("truncated.pth.tar"),
        "{err}"
    );

    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "not a checkpoint").unwrap();
    assert!(matches!(
        load_pytorch_resnet(model(), &text, "tiny").unwrap_err(),
        ImportError::Unreadable { .. }
    ));
}

#[test]
fn a_training_scripts_checkpoint_loads_its_model_entry_and_names_the_rest() {
    // `{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}` as main.py saves it
    // (fixtures/make_training_checkpoints.py): the same logits as the plain state_dict.
    let device = Default::default();
    let model = tiny_config(NormKind::group(2), WsVariant::OfficialTorch).init::<B>(&device);
    let (model, report) =
        load_pytorch_resnet(model, &fixture("gn_ws_tiny_train.pth.tar"), "tiny GN+WS").unwrap();
    assert_eq!(report.applied, 50);
    assert_eq!(report.model_entry.as_deref(), Some("state_dict"));
    assert!(
        !report.other_entries.is_empty()
            && report
                .other_entries
                .iter()
                .all(|k| k.starts_with("optimizer.") || k == "best_acc1"),
        "{:?}",
        report.other_entries
    );
    assert!(
        report.summary().contains("optimizer (50 tensors)"),
        "{}",
        report.summary()
    );
    let x = Tensor::<B, 4>::from_data(reference("x"), &device);
    model
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&reference("gn_ws.logits"), Tolerance::rel_abs(1e-4, 1e-5));
}

/// DLA-X (`resnet-family.md` §2.5, `elastic.md` §3, §8.4): the released models' parameter counts,
/// with every cardinality explicit — building dla102x_elastic (cardinality 50) first leaves
/// dla60x_elastic at its own 17,649,816 (the official code's class attribute made it 23,033,112).
#[test]
fn dla_parameter_counts() {
    use core_nets::DlaConfig;
    let count = |c: DlaConfig| {
        core_nets::count_parameters::<burn::backend::Flex, _>(
            &c.init::<burn::backend::Flex>(&Default::default()),
        )
    };
    assert_eq!(count(DlaConfig::dla102x_elastic()), 24_917_144);
    assert_eq!(count(DlaConfig::dla60x_elastic()), 17_649_816);
    assert_eq!(count(DlaConfig::dla60x()), 17_649_816);
    assert_eq!(count(DlaConfig::dla102x()), 26_772_120);
}
