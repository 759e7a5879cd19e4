//! The supervised stages after pre-training, one loop for both:
//!
//! * linear evaluation as `main_lincls.py` (`co2-moco.md` §4.2): the pre-trained query backbone
//!   frozen *in eval mode* (BN running statistics used, never updated), a new fc (N(0, 0.01)
//!   weights, zero bias) the only trainable tensors, SGD with momentum 0.9, no weight decay, lr 30,
//!   ×0.1 at the milestones, RandomResizedCrop + flip; the backbone runs on the inference backend,
//!   so no gradient can reach it by construction;
//! * semi-supervised fine-tuning (§4.3): backbone (BN in training mode) and new fc trained on a
//!   labelled subset, each with its own learning rate under the same schedule.
//!
//! Both report top-1/top-5 on the validation split after every epoch, final and best, and save the
//! classifier (backbone + fc) for `vireo infer co2`: `classifier.mpk` (linear) and
//! `classifier-semi.mpk`.

use anyhow::{Context, Result};
use burn::{
    data::dataloader::DataLoader,
    module::{AutodiffModule, Module, Param},
    nn::{Initializer, Linear, LinearConfig, loss::CrossEntropyLossConfig},
    optim::{GradientsParams, Optimizer},
    tensor::{Tensor, backend::AutodiffBackend},
};
use core_nets::ResNet;
use core_train::{AtomicRecorder, OptimizerConfig, RunDir, Schedule, ScheduleConfig};
use datasets::{ClassificationBatcher, EpochLoader};

use super::{
    config::{Co2Experiment, LabelSubset, LinclsConfig, SemiConfig},
    data::Co2Sources,
};

/// One epoch of a supervised stage.
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisedRow {
    pub epoch: usize,
    /// The head's mean learning rate (the backbone's, when trained, follows the same schedule).
    pub lr: f64,
    pub train_loss: f64,
    pub valid_top1: f64,
    pub valid_top5: f64,
}

pub struct SupervisedResult {
    /// "linear evaluation", "semi-supervised fine-tuning, 10 % of the labels", ...
    pub name: String,
    /// Labelled training images the stage saw.
    pub images: usize,
    pub rows: Vec<SupervisedRow>,
    pub final_top1: f64,
    pub final_top5: f64,
    /// `main_lincls.py` keeps the best top-1 over epochs (`best_acc1`); both are reported.
    pub best_top1: f64,
    pub best_top5: f64,
}

/// Which stage, with its settings.
#[derive(Clone, Copy, Debug)]
pub enum Stage<'a> {
    Linear(&'a LinclsConfig),
    Semi(&'a SemiConfig),
}

impl Stage<'_> {
    fn name(&self) -> String {
        match self {
            Stage::Linear(_) => "linear evaluation".into(),
            Stage::Semi(s) => s.describe(),
        }
    }

    /// The run file the classifier goes to (without `.mpk`).
    pub fn file(&self) -> &'static str {
        match self {
            Stage::Linear(_) => "classifier",
            Stage::Semi(_) => "classifier-semi",
        }
    }

    /// (epochs, batch size, head lr, backbone lr when the backbone trains, schedule, augment, subset)
    #[allow(clippy::type_complexity)]
    fn settings(
        &self,
    ) -> (
        usize,
        usize,
        f64,
        Option<f64>,
        &ScheduleConfig,
        bool,
        Option<&LabelSubset>,
    ) {
        match *self {
            Stage::Linear(l) => (
                l.epochs,
                l.batch_size,
                l.lr,
                None,
                &l.schedule,
                l.augment,
                None,
            ),
            Stage::Semi(s) => (
                s.epochs,
                s.batch_size,
                s.lr_head,
                Some(s.lr_backbone),
                &s.schedule,
                s.augment,
                Some(&s.subset),
            ),
        }
    }
}

/// The new classifier head: N(0, 0.01) weights, zero bias (`main_lincls.py`).
fn new_head<B: AutodiffBackend>(channels: usize, classes: usize, device: &B::Device) -> Linear<B> {
    let mut fc: Linear<B> = LinearConfig::new(channels, classes)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    fc.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
    fc
}

/// SGD with momentum 0.9, no weight decay: both stages' optimiser.
fn sgd<B: AutodiffBackend, M: AutodiffModule<B>>(lr: f64) -> impl Optimizer<M, B> {
    OptimizerConfig {
        kind: core_train::OptimizerKind::Sgd,
        lr,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    }
    .sgd()
    .init::<B, M>()
}

/// Trains `stage` on the pre-trained `backbone` and writes its classifier into `run`.
#[allow(clippy::too_many_arguments)]
pub fn supervised_stage<B: AutodiffBackend>(
    stage: Stage<'_>,
    backbone: &ResNet<B::InnerBackend>,
    config: &Co2Experiment,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    run: &RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<SupervisedResult> {
    let (epochs, batch_size, lr_head, lr_backbone, schedule, augment, subset) = stage.settings();
    let (skip_corrupt, seed) = (config.data.skip_corrupt(), config.train.seed);
    let classes = sources.classes.len();
    let name = stage.name();
    let mut fc: Linear<B> = new_head(config.model.feature_channels(), classes, device);
    let mut fc_optimizer = sgd::<B, Linear<B>>(lr_head);
    // Fine-tuning trains a copy of the backbone (same parameter ids); linear evaluation never
    // lifts it onto the autodiff backend.
    let mut tuned: Option<ResNet<B>> = lr_backbone.map(|_| core_nets::trainable(backbone.clone()));
    let mut backbone_optimizer = sgd::<B, ResNet<B>>(lr_backbone.unwrap_or(0.0));
    let (train_items, epoch_counter) = config.supervised_train(sources, subset, augment)?;
    let train_images = train_items.len();
    let train = EpochLoader::<B::InnerBackend, _, _>::new(
        train_items,
        images.clone(),
        batch_size,
        device.clone(),
    )
    .shuffle(seed ^ 0x6c69_6e63_6c73)
    .sharing_epoch(epoch_counter)
    .skip_failures(skip_corrupt);
    let valid = EpochLoader::<B::InnerBackend, _, _>::new(
        sources.valid.clone(),
        images.clone(),
        batch_size,
        device.clone(),
    )
    .skip_failures(skip_corrupt);
    let statuses = [train.status(), valid.status()];
    let mut schedule = Schedule::new(
        schedule.clone(),
        lr_head,
        epochs,
        train_images.div_ceil(batch_size),
    );
    let cross_entropy = CrossEntropyLossConfig::new().init(device);
    let mut rows = Vec::new();
    if verbose {
        println!("{name}: {train_images} labelled training images");
    }
    for epoch in 1..=epochs {
        let (mut loss_sum, mut lr_sum, mut steps) = (0.0, 0.0, 0usize);
        for batch in train.iter() {
            let lr = schedule.lr_at(schedule.iteration);
            schedule.iteration += 1;
            let features: Tensor<B, 2> = match &tuned {
                Some(net) => net.forward_pooled(Tensor::from_inner(batch.images)),
                // The frozen encoder in eval mode: features without a graph.
                None => Tensor::from_inner(backbone.forward_pooled(batch.images)),
            };
            let targets = Tensor::from_inner(batch.targets);
            let loss = cross_entropy.forward(fc.forward(features), targets);
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            let mut grads = loss.backward();
            let fc_grads = GradientsParams::from_module(&mut grads, &fc);
            if let (Some(net), Some(base)) = (tuned.take(), lr_backbone) {
                let net_grads = GradientsParams::from_module(&mut grads, &net);
                // The backbone's rate follows the head's schedule.
                tuned = Some(backbone_optimizer.step(base * lr / lr_head, net, net_grads));
            }
            fc = fc_optimizer.step(lr, fc, fc_grads);
            lr_sum += lr;
            steps += 1;
        }
        let current = tuned
            .as_ref()
            .map_or_else(|| backbone.clone(), |n| n.valid());
        let (top1, top5) = accuracy(&current, &fc.valid(), &valid);
        if let Some(failure) = statuses.iter().find_map(|s| s.failure()) {
            anyhow::bail!("{name} stopped: {failure}");
        }
        let row = SupervisedRow {
            epoch,
            lr: lr_sum / steps.max(1) as f64,
            train_loss: loss_sum / steps.max(1) as f64,
            valid_top1: top1,
            valid_top5: top5,
        };
        if verbose {
            println!(
                "{name} {epoch:>3}/{epochs} | lr {:.2e} | train loss {:.4} | valid top-1 {:5.1}% top-5 {:5.1}%",
                row.lr, row.train_loss, row.valid_top1, row.valid_top5
            );
        }
        rows.push(row);
    }
    let classifier = ResNet {
        fc: Some(fc.valid()),
        ..tuned.map_or_else(|| backbone.clone(), |n| n.valid())
    };
    let file = run.file(stage.file());
    classifier
        .save_file(&file, &AtomicRecorder)
        .with_context(|| format!("writing {}.mpk", file.display()))?;
    let last = rows
        .last()
        .cloned()
        .context("no epoch of the supervised stage")?;
    let best = rows
        .iter()
        .max_by(|a, b| a.valid_top1.total_cmp(&b.valid_top1))
        .cloned()
        .unwrap_or(last.clone());
    Ok(SupervisedResult {
        name,
        images: train_images,
        final_top1: last.valid_top1,
        final_top5: last.valid_top5,
        best_top1: best.valid_top1,
        best_top5: best.valid_top5,
        rows,
    })
}

use burn::tensor::ElementConversion as _;

/// Top-1 and top-5 (%) of `backbone` + `fc` on `loader`'s images.
fn accuracy<Bi: burn::tensor::backend::Backend>(
    backbone: &ResNet<Bi>,
    fc: &Linear<Bi>,
    loader: &EpochLoader<Bi, datasets::ClassificationItem, datasets::ClassificationBatch<Bi>>,
) -> (f64, f64) {
    let (mut top1, mut top5, mut count) = (0usize, 0usize, 0usize);
    for batch in loader.iter() {
        let logits: Vec<f32> = fc
            .forward(backbone.forward_pooled(batch.images))
            .into_data()
            .iter::<f32>()
            .collect();
        let targets: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
        let classes = logits.len() / targets.len().max(1);
        for (row, &target) in logits.chunks(classes).zip(&targets) {
            let rank = row.iter().filter(|&&v| v > row[target as usize]).count();
            top1 += (rank < 1) as usize;
            top5 += (rank < 5) as usize;
        }
        count += targets.len();
    }
    let percent = |n: usize| 100.0 * n as f64 / count.max(1) as f64;
    (percent(top1), percent(top5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use core_train::Experiment;

    /// A tiny smoke config (16 px, 64 training images) with `extra` overrides, its data, and a
    /// pre-trained backbone loaded from a file as a real one is (loaded tensors do not require
    /// grad); the stage's result and its saved classifier (`file`) after running `stage`.
    fn run_stage(
        extra: &[&str],
        stage: impl Fn(&Co2Experiment) -> Stage<'_>,
        file: &str,
    ) -> (SupervisedResult, ResNet<Flex>, ResNet<Flex>, Vec<usize>) {
        let overrides: Vec<String> = [
            "data.train_size=64",
            "data.valid_size=16",
            "data.world.image_size=16",
            "train.batch_size=16",
            "model.queue=64",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        let config = crate::CO2.config("smoke", &overrides).unwrap();
        let device = Default::default();
        let sources = config.sources().unwrap();
        let images = datasets::ClassificationBatcher {
            normalization: config.data.normalization(),
        };
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let fresh = config.model.init_encoder::<Flex>(&device).backbone;
        fresh
            .clone()
            .save_file(run.file("encoder"), &AtomicRecorder)
            .unwrap();
        let backbone = RunDir::load_model(fresh, &run.file("encoder.mpk"), &device).unwrap();
        let result = supervised_stage::<Autodiff<Flex>>(
            stage(&config),
            &backbone,
            &config,
            &sources,
            &images,
            &run,
            false,
            &device,
        )
        .unwrap();
        let saved = RunDir::load_model(
            config
                .model
                .backbone
                .clone()
                .with_num_classes(Some(sources.classes.len()))
                .init::<Flex>(&device),
            &run.file(file),
            &device,
        )
        .unwrap();
        (result, saved, backbone, sources.train_labels)
    }

    fn probe() -> Tensor<Flex, 4> {
        Tensor::random(
            [4, 3, 16, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    }

    fn max_abs<const D: usize>(t: Tensor<Flex, D>) -> f64 {
        t.abs().max().into_scalar().elem::<f64>()
    }

    /// §8.7: after linear evaluation every non-fc tensor, BN running statistics included, is what
    /// it was: the saved classifier's features equal the pre-trained backbone's, in eval mode.
    #[test]
    fn linear_evaluation_changes_nothing_but_fc() {
        let (_, saved, backbone, _) = run_stage(
            &["lincls.epochs=2", "lincls.batch_size=16"],
            |c| Stage::Linear(c.lincls.as_ref().unwrap()),
            "classifier.mpk",
        );
        let x = probe();
        saved
            .forward_pooled(x.clone())
            .into_data()
            .assert_eq(&backbone.forward_pooled(x).into_data(), true);
        // ... and the fc did train: it is not its N(0, 0.01) start any more.
        let fc = max_abs(saved.fc.unwrap().weight.val());
        assert!(fc > 0.05, "{fc}");
    }

    /// §4.3: fine-tuning trains on the class-balanced subset only, changes the backbone (its
    /// weights, not only the BN running statistics) and saves `classifier-semi.mpk`.
    #[test]
    fn semi_supervised_fine_tuning_trains_the_backbone_on_the_subset() {
        let (result, saved, backbone, labels) = run_stage(
            &[
                "semi.epochs=1",
                "semi.batch_size=8",
                "semi.subset={ fraction = 0.25 }",
            ],
            |c| Stage::Semi(c.semi.as_ref().unwrap()),
            "classifier-semi.mpk",
        );
        let expected = datasets::balanced_subset(&labels, 0.25, 0).len();
        assert!((5..64).contains(&expected), "{expected}");
        assert_eq!((result.images, result.rows.len()), (expected, 1));
        let x = probe();
        let change = max_abs(saved.forward_pooled(x.clone()) - backbone.forward_pooled(x));
        assert!(change > 1e-4, "{change}");
        let moved = max_abs(saved.conv1.weight.val() - backbone.conv1.weight.val());
        assert!(moved > 0.0, "the stem's weights did not change");
    }
}
