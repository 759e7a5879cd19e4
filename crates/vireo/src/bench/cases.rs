//! The benchmark registry: every case is one function that builds its inputs on the device and
//! returns one iteration as a closure; `bench/pytorch/bench.py` has a case of the same name and
//! shapes. To add a case: write the function, add one line to [`registry`], and the same case to
//! the PyTorch script.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use burn::{
    data::{dataloader::DataLoader, dataset::Dataset},
    module::AutodiffModule,
    optim::{GradientsParams, Optimizer},
    tensor::{Distribution, Int, Tensor, backend::AutodiffBackend},
};
use core_nets::ResNetConfig;
use core_norm::{
    BatchChannelNorm, BatchStatistics, Conv2dConfig, ConvKind, GroupNorm2d, WsVariant,
};
use datasets::{
    Augmented, ClassificationBatcher, ClassificationItem, EpochLoader, ImageFolder, Normalization,
    Pipeline, ShapeWorld, ShapeWorldClassification, Split,
};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    Layers,
    Models,
    Data,
}

/// What a case needs besides the device.
pub struct Context<B: AutodiffBackend> {
    pub device: B::Device,
    pub threads: usize,
    /// The JPEG folder of the image-folder case (`<dir>/train/<class>/*.jpg`).
    pub jpeg_folder: PathBuf,
}

/// A prepared case: items (images) per iteration and one iteration, device work finished.
pub struct Prepared {
    pub items: usize,
    pub step: Box<dyn FnMut() -> Result<()>>,
}

pub struct Case<B: AutodiffBackend> {
    pub name: &'static str,
    pub suite: Suite,
    /// One line for the report.
    pub what: &'static str,
    pub build: fn(&Context<B>) -> Result<Prepared>,
}

pub fn registry<B: AutodiffBackend>() -> Vec<Case<B>> {
    use Suite::*;
    let case = |name, suite, what, build| Case {
        name,
        suite,
        what,
        build,
    };
    vec![
        case(
            "conv3x3_fwd",
            Layers,
            "conv 3×3 64→64, B8 56², forward",
            conv_fwd::<B, false>,
        ),
        case(
            "conv3x3_fwd_bwd",
            Layers,
            "conv 3×3 64→64, B8 56², forward+backward",
            conv_fwd_bwd::<B, false>,
        ),
        case(
            "ws_conv3x3_fwd",
            Layers,
            "WS conv 3×3 64→64, B8 56², forward",
            conv_fwd::<B, true>,
        ),
        case(
            "ws_conv3x3_fwd_bwd",
            Layers,
            "WS conv 3×3 64→64, B8 56², forward+backward",
            conv_fwd_bwd::<B, true>,
        ),
        case(
            "gn32_fwd_bwd",
            Layers,
            "GroupNorm(32) on B8 64×56², forward+backward",
            gn_fwd_bwd::<B>,
        ),
        case(
            "bcn32_fwd_bwd",
            Layers,
            "BCN(32) on B8 64×56², forward+backward",
            bcn_fwd_bwd::<B>,
        ),
        case(
            "axial_h56_fwd",
            Layers,
            "axial attention (height), B8 128 ch 56², forward",
            axial_fwd::<B>,
        ),
        case(
            "axial_h56_fwd_bwd",
            Layers,
            "axial attention (height), B8 128 ch 56², forward+backward",
            axial_fwd_bwd::<B>,
        ),
        case(
            "resnet50_gnws_train_b8_224",
            Models,
            "ResNet-50 GN+WS train step, B8 224²",
            |c| train_step(c, ResNetConfig::resnet50().gn_ws(), 8, 224),
        ),
        case(
            "resnet50_gnws_infer_b8_224",
            Models,
            "ResNet-50 GN+WS inference, B8 224²",
            |c| inference(c, ResNetConfig::resnet50().gn_ws(), 8, 224),
        ),
        case(
            "resnet50_gnws_train_b32_64",
            Models,
            "ResNet-50 GN+WS train step, B32 64²",
            |c| train_step(c, ResNetConfig::resnet50().gn_ws(), 32, 64),
        ),
        case(
            "resnet50_gnws_infer_b32_64",
            Models,
            "ResNet-50 GN+WS inference, B32 64²",
            |c| inference(c, ResNetConfig::resnet50().gn_ws(), 32, 64),
        ),
        case(
            "resnet18_bn_train_b32_32",
            Models,
            "ResNet-18 BN train step, B32 32²",
            |c| train_step(c, ResNetConfig::resnet18(), 32, 32),
        ),
        case(
            "resnet18_bn_infer_b32_32",
            Models,
            "ResNet-18 BN inference, B32 32²",
            |c| inference(c, ResNetConfig::resnet18(), 32, 32),
        ),
        case(
            "co2_loss_b256_k65536_fwd",
            Layers,
            "InfoNCE + CO2 loss, B256, K 65,536, dim 128, forward",
            co2_loss_case::<B, false>,
        ),
        case(
            "co2_loss_b256_k65536_fwd_bwd",
            Layers,
            "InfoNCE + CO2 loss, B256, K 65,536, dim 128, forward+backward",
            co2_loss_case::<B, true>,
        ),
        case(
            "moco_v2_co2_train_b64_64",
            Models,
            "MoCo v2 + CO2 train step (ResNet-18, B64 64², queue 4,096, momentum update, enqueue)",
            moco_train_step::<B>,
        ),
        case(
            "resnext50_twopath_train_b8_224",
            Models,
            "ELASTIC's plain ResNeXt-50 (two-path layout) train step, B8 224²",
            |c| {
                train_step(
                    c,
                    elastic::models::two_path_resnext([3, 4, 6, 3], false, false),
                    8,
                    224,
                )
            },
        ),
        case(
            "resnext50_elastic_train_b8_224",
            Models,
            "ELASTIC ResNeXt-50 [6, 8, 5, 3] train step, B8 224²",
            |c| {
                train_step(
                    c,
                    elastic::models::two_path_resnext([6, 8, 5, 3], true, false),
                    8,
                    224,
                )
            },
        ),
        case(
            "resnext50_twopath_infer_b8_224",
            Models,
            "ELASTIC's plain ResNeXt-50 (two-path layout) inference, B8 224²",
            |c| {
                inference(
                    c,
                    elastic::models::two_path_resnext([3, 4, 6, 3], false, false),
                    8,
                    224,
                )
            },
        ),
        case(
            "resnext50_elastic_infer_b8_224",
            Models,
            "ELASTIC ResNeXt-50 [6, 8, 5, 3] inference, B8 224²",
            |c| {
                inference(
                    c,
                    elastic::models::two_path_resnext([6, 8, 5, 3], true, false),
                    8,
                    224,
                )
            },
        ),
        case(
            "sake_train_b40_224",
            Models,
            "SAKE step: CSE-ResNet-50 student (D 64, 220 classes) on 4 sketches + 36 photos 224², frozen teacher forward, CE + KD, Adam",
            sake_train_step::<B>,
        ),
        case(
            "compnet_vmf_infer_b16_224",
            Models,
            "CN-vMF inference: VGG-16 pool5 + 512 vMF kernels, 12 × 4 mixtures 7×7, 7 occluder models, B16 224²",
            compnet_infer::<B>,
        ),
        case(
            "compnet_vmf_train_b1_224",
            Models,
            "CN-vMF train step as released: batch 1 224², frozen VGG-16 pool5, released loss, Adagrad into kernels + mixtures",
            compnet_train_step::<B>,
        ),
        case(
            "compnet_vmfmm_em_n100k_k512",
            Layers,
            "CompNet dictionary init: one vMF-EM iteration (E + M step, f64), 100,000 × 512 unit features, K = 512",
            compnet_vmfmm::<B>,
        ),
        case(
            "sake_rank_real_q1000_g10000",
            Layers,
            "SAKE retrieval: 1,000 queries ranked against 10,000 gallery items, 64-d, −Euclidean distance",
            sake_rank_real::<B>,
        ),
        case(
            "sake_rank_hamming_q1000_g10000",
            Layers,
            "SAKE retrieval: 1,000 queries ranked against 10,000 gallery items, 64-bit codes, Hamming",
            sake_rank_hamming::<B>,
        ),
        case(
            "axial26s_train_b8_224",
            Models,
            "Axial-ResNet-26-S train step, B8 224²",
            axial26s_train::<B>,
        ),
        case(
            "ws_smoke_train_b32_32",
            Models,
            "the WS smoke preset's net, train step, B32 32²",
            |c| train_step(c, smoke_model()?, 32, 32),
        ),
        case(
            "shapeworld_64_loader",
            Data,
            "ShapeWorld 64² classification through the loader, batch 64",
            shapeworld_loader::<B>,
        ),
        case(
            "ws_smoke_loader",
            Data,
            "the WS smoke preset's data (ShapeWorld 32²) through its loader",
            smoke_loader::<B>,
        ),
        case(
            "imagefolder_rrc_224",
            Data,
            "JPEG decode + RandomResizedCrop(224) + flip through the loader, batch 32",
            image_folder_loader::<B>,
        ),
    ]
}

/// The layer cases' input: `[8, 64, 56, 56]`, standard normal.
fn layer_input<B: burn::tensor::backend::Backend>(device: &B::Device) -> Tensor<B, 4> {
    Tensor::random([8, 64, 56, 56], Distribution::Normal(0.0, 1.0), device)
}

fn conv3x3(ws: bool) -> Conv2dConfig {
    let kind = if ws {
        ConvKind::Ws {
            variant: WsVariant::OfficialTorch,
        }
    } else {
        ConvKind::Plain
    };
    Conv2dConfig::new(64, 64, 3).with_padding(1).with_kind(kind)
}

fn sync<B: burn::tensor::backend::Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

/// Forward only, on the inference backend (no autodiff graph), as PyTorch under `no_grad`.
fn conv_fwd<B: AutodiffBackend, const WS: bool>(c: &Context<B>) -> Result<Prepared> {
    let conv = conv3x3(WS).init::<B>(&c.device).valid();
    let x = layer_input::<B::InnerBackend>(&c.device);
    let device = c.device.clone();
    Ok(Prepared {
        items: 8,
        step: Box::new(move || {
            let _ = conv.forward(x.clone());
            sync::<B::InnerBackend>(&device)
        }),
    })
}

/// `layer(x).sum().backward()` with `x` requiring its gradient, as in a network's inner layer.
fn fwd_bwd<B: AutodiffBackend>(
    c: &Context<B>,
    layer: impl Fn(Tensor<B, 4>) -> Tensor<B, 4> + 'static,
) -> Result<Prepared> {
    let x = layer_input::<B>(&c.device).require_grad();
    let device = c.device.clone();
    Ok(Prepared {
        items: 8,
        step: Box::new(move || {
            let _grads = layer(x.clone()).sum().backward();
            sync::<B>(&device)
        }),
    })
}

fn conv_fwd_bwd<B: AutodiffBackend, const WS: bool>(c: &Context<B>) -> Result<Prepared> {
    let conv = conv3x3(WS).init::<B>(&c.device);
    fwd_bwd(c, move |x| conv.forward(x))
}

fn gn_fwd_bwd<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let norm = GroupNorm2d::<B>::new(64, 32, 1e-5, &c.device);
    fwd_bwd(c, move |x| norm.forward(x))
}

fn bcn_fwd_bwd<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let stats = BatchStatistics::Batch { momentum: 0.1 };
    let norm = BatchChannelNorm::<B>::new(64, 32, 1e-5, stats, &c.device);
    fwd_bwd(c, move |x| norm.forward(x))
}

fn axial_layer() -> core_attn::AxialAttentionConfig {
    use core_attn::{AxialAttentionConfig, Axis, Span};
    AxialAttentionConfig::new(128, 128, Span::Global { size: 56 }, Axis::Height)
}

fn axial_input<B: burn::tensor::backend::Backend>(device: &B::Device) -> Tensor<B, 4> {
    Tensor::random([8, 128, 56, 56], Distribution::Normal(0.0, 1.0), device)
}

/// Evaluation mode (running statistics) on the inference backend, as PyTorch's `eval()` + `no_grad`.
fn axial_fwd<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let layer = axial_layer().init::<B>(&c.device).valid();
    let x = axial_input::<B::InnerBackend>(&c.device);
    let device = c.device.clone();
    Ok(Prepared {
        items: 8,
        step: Box::new(move || {
            let _ = layer.forward(x.clone());
            sync::<B::InnerBackend>(&device)
        }),
    })
}

/// Training mode (batch statistics), `layer(x).sum().backward()`.
fn axial_fwd_bwd<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let layer = axial_layer().init::<B>(&c.device);
    let x = axial_input::<B>(&c.device).require_grad();
    let device = c.device.clone();
    Ok(Prepared {
        items: 8,
        step: Box::new(move || {
            let _grads = layer.forward(x.clone()).sum().backward();
            sync::<B>(&device)
        }),
    })
}

/// Forward, cross-entropy, backward and an SGD step of Axial-ResNet-26-S.
fn axial26s_train<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let model = axial_deeplab::AxialResNetConfig::axial26s().init::<B>(&c.device);
    sgd_classification_step(c, model, 8, 224, 1000, |m, x| m.forward(x))
}

fn classification_batch<B: burn::tensor::backend::Backend>(
    batch: usize,
    size: usize,
    classes: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let images = Tensor::random(
        [batch, 3, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let targets =
        Tensor::<B, 1, Int>::random([batch], Distribution::Uniform(0.0, classes as f64), device);
    (images, targets)
}

/// Forward, cross-entropy, backward and an SGD step (momentum 0.9, weight decay 1e-4) of a ResNet.
fn train_step<B: AutodiffBackend>(
    c: &Context<B>,
    config: ResNetConfig,
    batch: usize,
    size: usize,
) -> Result<Prepared> {
    let classes = config.num_classes.unwrap_or(1000);
    let model = config.init::<B>(&c.device);
    sgd_classification_step(c, model, batch, size, classes, |m, x| m.forward(x))
}

/// One training step of any classifier `forward` on a fixed random batch: forward, cross-entropy,
/// backward and an SGD step (momentum 0.9, weight decay 1e-4, the WS/BCN recipes' optimiser).
fn sgd_classification_step<B, M>(
    c: &Context<B>,
    model: M,
    batch: usize,
    size: usize,
    classes: usize,
    forward: fn(&M, Tensor<B, 4>) -> Tensor<B, 2>,
) -> Result<Prepared>
where
    B: AutodiffBackend,
    M: burn::module::AutodiffModule<B> + 'static,
{
    let mut model = Some(model);
    let mut optimizer = core_train::OptimizerConfig {
        kind: core_train::OptimizerKind::Sgd,
        lr: 0.01,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
    }
    .sgd()
    .init::<B, M>();
    let (images, targets) = classification_batch::<B>(batch, size, classes, &c.device);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&c.device);
    let device = c.device.clone();
    Ok(Prepared {
        items: batch,
        step: Box::new(move || {
            let current = model
                .take()
                .context("the model was lost in a failed step")?;
            let value = loss.forward(forward(&current, images.clone()), targets.clone());
            let grads = GradientsParams::from_grads(value.backward(), &current);
            model = Some(optimizer.step(0.01, current, grads));
            sync::<B>(&device)
        }),
    })
}

/// Forward in evaluation mode on the inference backend.
fn inference<B: AutodiffBackend>(
    c: &Context<B>,
    config: ResNetConfig,
    batch: usize,
    size: usize,
) -> Result<Prepared> {
    let model = config.init::<B>(&c.device).valid();
    let (images, _) = classification_batch::<B::InnerBackend>(batch, size, 10, &c.device);
    let device = c.device.clone();
    Ok(Prepared {
        items: batch,
        step: Box::new(move || {
            let _ = model.forward(images.clone());
            sync::<B::InnerBackend>(&device)
        }),
    })
}

fn smoke_experiment() -> Result<classification::ClassificationConfig> {
    use core_train::Experiment;
    classification::WS.config("smoke", &[])
}

fn smoke_model() -> Result<ResNetConfig> {
    Ok(smoke_experiment()?.model)
}

/// One epoch of `dataset` through an [`EpochLoader`] into tensors on the device.
fn loader_pass<B: AutodiffBackend>(
    c: &Context<B>,
    dataset: Arc<dyn Dataset<ClassificationItem>>,
    batch: usize,
    workers: usize,
    normalization: Normalization,
) -> Result<Prepared> {
    let items = dataset.len();
    let loader = EpochLoader::<B::InnerBackend, _, _>::new(
        dataset,
        ClassificationBatcher { normalization },
        batch,
        c.device.clone(),
    )
    .shuffle(0)
    .workers(workers);
    let device = c.device.clone();
    Ok(Prepared {
        items,
        step: Box::new(move || {
            for batch in loader.iter() {
                drop(batch);
            }
            sync::<B::InnerBackend>(&device)
        }),
    })
}

fn shapeworld_loader<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let world = ShapeWorld {
        image_size: 64,
        num_classes: 12,
        ..ShapeWorld::default()
    };
    let data = ShapeWorldClassification {
        world,
        split: Split::Train,
        len: 1024,
    };
    let normalization = Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    };
    loader_pass(c, Arc::new(data), 64, c.threads, normalization)
}

fn smoke_loader<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let experiment = smoke_experiment()?;
    let data = classification::train::datasets_of(&experiment)?;
    let normalization = classification::train::batcher_of(&experiment).normalization;
    let (batch, workers) = (experiment.train.batch_size, experiment.train.num_workers);
    loader_pass(c, data.train, batch, workers, normalization)
}

fn image_folder_loader<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let folder = ImageFolder::scan(&c.jpeg_folder, "train", None)?;
    let augmented = Augmented::new(folder, Pipeline::imagenet_train(224), 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    loader_pass(
        c,
        Arc::new(augmented),
        32,
        c.threads,
        Normalization::IMAGENET,
    )
}

/// Unit rows `[n, d]`.
fn unit_rows<B: burn::tensor::backend::Backend>(
    n: usize,
    d: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    co2::moco::normalize_rows(Tensor::random(
        [n, d],
        Distribution::Normal(0.0, 1.0),
        device,
    ))
}

/// InfoNCE (τ 0.2) + the CO2 term (α 1, τ_con 0.04) of 256 queries against a 65,536-key queue:
/// forward on the inference backend, or forward+backward to the queries.
fn co2_loss_case<B: AutodiffBackend, const BACKWARD: bool>(c: &Context<B>) -> Result<Prepared> {
    let device = c.device.clone();
    let config = co2::Co2Config::paper(1.0, 0.04);
    if BACKWARD {
        let (q, k) = (
            unit_rows::<B>(256, 128, &device).require_grad(),
            unit_rows::<B>(256, 128, &device),
        );
        let queue = unit_rows::<B>(65_536, 128, &device).transpose();
        Ok(Prepared {
            items: 256,
            step: Box::new(move || {
                let loss = co2::co2_loss(q.clone(), k.clone(), queue.clone(), 0.2, &config);
                let _grads = loss.total.backward();
                sync::<B>(&device)
            }),
        })
    } else {
        let inner = |n| unit_rows::<B::InnerBackend>(n, 128, &device);
        let (q, k, queue) = (inner(256), inner(256), inner(65_536).transpose());
        Ok(Prepared {
            items: 256,
            step: Box::new(move || {
                let _ = co2::co2_loss(q.clone(), k.clone(), queue.clone(), 0.2, &config);
                sync::<B::InnerBackend>(&device)
            }),
        })
    }
}

/// One MoCo v2 + CO2 step as the co2 experiment runs it: momentum update, query forward, key
/// forward in 2 BN groups, InfoNCE + CO2, backward, SGD, enqueue.
fn moco_train_step<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let config = co2::MocoConfig {
        backbone: ResNetConfig::resnet18(),
        queue: 4096,
        key_bn: co2::KeyBn::Split { groups: 2 },
        ..co2::MocoConfig::moco_v2()
    };
    let co2_term = co2::Co2Config::paper(1.0, 0.04);
    let mut model = Some(config.init::<B>(&c.device));
    let mut optimizer = core_train::OptimizerConfig {
        kind: core_train::OptimizerKind::Sgd,
        lr: 0.03,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-4,
    }
    .sgd()
    .init::<B, co2::Moco<B>>();
    let (query, _) = classification_batch::<B>(64, 64, 10, &c.device);
    let (key, _) = classification_batch::<B>(64, 64, 10, &c.device);
    let permutation: Vec<usize> = (0..64).rev().collect();
    let device = c.device.clone();
    Ok(Prepared {
        items: 64,
        step: Box::new(move || {
            let current = model.take().context("the model of the previous step")?;
            let current = current.momentum_step(config.momentum);
            let q = current.encoder_q.forward(query.clone());
            let k = current.keys(key.clone(), config.key_bn, &permutation);
            let loss = co2::co2_loss(
                q,
                k.clone(),
                current.queue.snapshot(),
                config.tau,
                &co2_term,
            );
            let grads = GradientsParams::from_grads(loss.total.backward(), &current);
            let co2::Moco {
                encoder_q,
                encoder_k,
                queue,
            } = optimizer.step(0.03, current, grads);
            model = Some(co2::Moco {
                encoder_q,
                encoder_k,
                queue: queue.enqueue(k),
            });
            sync::<B>(&device)
        }),
    })
}

/// One SAKE fine-tuning step as the sake experiment runs it: the CSE-ResNet-50 student in
/// training mode on a mixed batch (4 sketches + 36 photos, TU-Berlin's step), the frozen teacher
/// in evaluation mode, CE + λ·L_kd, backward, Adam.
fn sake_train_step<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    use burn::train::TrainStep;
    let config = sake::SakeModelConfig::default();
    let mut model = Some(sake::experiment::learner::SakeTraining {
        student: config.init::<B>(&c.device),
        teacher: config.init_teacher::<B>(&c.device),
        loss: sake::SakeLossConfig::default(),
    });
    let mut optimizer = core_train::OptimizerConfig {
        kind: core_train::OptimizerKind::Adam,
        lr: 1e-4,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 5e-4,
    }
    .adam()
    .init::<B, sake::experiment::learner::SakeTraining<B>>();
    let (images, labels) = classification_batch::<B>(40, 224, 220, &c.device);
    let domains: Vec<sake::Domain> = (0..40)
        .map(|i| {
            if i < 4 {
                sake::Domain::Sketch
            } else {
                sake::Domain::Photo
            }
        })
        .collect();
    let batch = sake::experiment::data::SakeBatch {
        images,
        domain: sake::domain_codes(&domains, &c.device),
        labels,
        relations: Some(Tensor::zeros([40, 1000], &c.device)),
        indices: (0..40).collect(),
    };
    let device = c.device.clone();
    Ok(Prepared {
        items: 40,
        step: Box::new(move || {
            let current = model.take().context("the model of the previous step")?;
            let output = current.step(batch.clone());
            let grads = output.grads;
            model = Some(optimizer.step(1e-4, current, grads));
            sync::<B>(&device)
        }),
    })
}

/// CN-vMF at the released shapes (`compnet.md` §3) with random weights: VGG-16 pool5, 512 unit
/// kernels, 12 × 4 mixtures of 7 × 7, 7 occluder models.
fn compnet_model<B: burn::tensor::backend::Backend>(
    device: &B::Device,
) -> compnet::model::CompNet<B> {
    use compnet::{head::CompositionalHead, model::CompNet};
    let uniform = Distribution::Uniform(0.0, 1.0);
    CompNet::new(
        compnet::backbone::Backbone::Vgg(
            core_nets::vgg::VggConfig::vgg16(core_nets::vgg::VggCut::Pool5).init(device),
        ),
        CompositionalHead::new(
            Tensor::random([512, 512], Distribution::Normal(0.0, 1.0), device),
            Tensor::random([48, 512, 7, 7], uniform, device),
            compnet::head::HeadConfig::default(),
        ),
        Tensor::random([7, 512], uniform, device),
        compnet::model::LossConfig::default(),
    )
}

/// CN-vMF's classification scores of a B16 224² batch (no autodiff graph).
fn compnet_infer<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    let model = compnet_model::<B::InnerBackend>(&c.device);
    let (images, _) = classification_batch::<B::InnerBackend>(16, 224, 12, &c.device);
    let device = c.device.clone();
    Ok(Prepared {
        items: 16,
        step: Box::new(move || {
            let _ = model.forward(images.clone()).scores;
            sync::<B::InnerBackend>(&device)
        }),
    })
}

/// One released CN-vMF step: batch 1 224², the frozen backbone outside the graph, the released
/// loss, backward into the kernels and mixtures, Adagrad (lr 1e-2).
fn compnet_train_step<B: AutodiffBackend>(c: &Context<B>) -> Result<Prepared> {
    use burn::train::TrainStep;
    let mut model = Some(compnet_model::<B>(&c.device));
    let mut optimizer = core_train::OptimizerConfig {
        kind: core_train::OptimizerKind::Adagrad,
        lr: 1e-2,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    }
    .adagrad()
    .init::<B, compnet::model::CompNet<B>>();
    let (images, targets) = classification_batch::<B>(1, 224, 12, &c.device);
    let batch = datasets::ClassificationBatch { images, targets };
    let device = c.device.clone();
    Ok(Prepared {
        items: 1,
        step: Box::new(move || {
            let current = model.take().context("the model of the previous step")?;
            let output = current.step(batch.clone());
            model = Some(optimizer.step(1e-2, current, output.grads));
            sync::<B>(&device)
        }),
    })
}

/// One vMF-EM iteration of the dictionary's initialisation (`compnet::vmfmm`, f64 on the host).
fn compnet_vmfmm<B: AutodiffBackend>(_: &Context<B>) -> Result<Prepared> {
    use rand::{RngExt, SeedableRng};
    let (n, dim, k) = (100_000, 512, 512);
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
    let mut features = compnet::vmfmm::DMatrix::from_fn(n, dim, |_, _| rng.random_range(-1.0..1.0));
    for mut row in features.row_iter_mut() {
        let norm = row.norm() + 1e-6;
        row /= norm;
    }
    let mut model = compnet::vmfmm::Vmfmm {
        mu: (0..k)
            .map(|i| features.row(i).iter().copied().collect())
            .collect(),
        pi: vec![1.0 / k as f64; k],
        kappa: 30.0,
        mllk: Vec::new(),
    };
    Ok(Prepared {
        items: n,
        step: Box::new(move || {
            let (posteriors, mllk) = model.e_step_matrix(&features);
            std::hint::black_box(mllk);
            model.m_step_matrix(&features, &posteriors);
            Ok(())
        }),
    })
}

/// `n × dim` uniform features, L2-normalised (the sake experiment's embeddings).
fn unit_features(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let raw: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    sake::retrieval::l2_normalize(&raw, dim)
}

/// Every query's full ranking of the gallery by −Euclidean distance (what mAP@all needs), queries
/// in parallel as `sake::retrieval::evaluate` runs them.
fn sake_rank_real<B: AutodiffBackend>(_: &Context<B>) -> Result<Prepared> {
    let dim = 64;
    let (queries, gallery) = (unit_features(1000, dim, 1), unit_features(10_000, dim, 2));
    Ok(Prepared {
        items: 1000,
        step: Box::new(move || {
            queries.par_chunks(dim).for_each(|q| {
                let scores = sake::retrieval::euclidean_scores(q, &gallery, dim);
                std::hint::black_box(sake::retrieval::ranking(&scores));
            });
            Ok(())
        }),
    })
}

/// Every query's full ranking of the gallery by Hamming distance of 64-bit codes (packed, as the
/// sake experiment ranks them), queries in parallel.
fn sake_rank_hamming<B: AutodiffBackend>(_: &Context<B>) -> Result<Prepared> {
    let codes = |n: usize, seed: u64| {
        let bits: Vec<Vec<bool>> = unit_features(n, 64, seed)
            .chunks(64)
            .map(|row| row.iter().map(|&v| v >= 0.0).collect())
            .collect();
        sake::itq::PackedCodes::pack(&bits)
    };
    let (queries, gallery) = (codes(1000, 3), codes(10_000, 4));
    Ok(Prepared {
        items: 1000,
        step: Box::new(move || {
            (0..queries.len()).into_par_iter().for_each(|q| {
                let scores = sake::itq::hamming_scores(queries.code(q), &gallery);
                std::hint::black_box(sake::retrieval::ranking(&scores));
            });
            Ok(())
        }),
    })
}
