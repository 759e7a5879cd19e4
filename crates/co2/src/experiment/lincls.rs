//! Linear evaluation as `main_lincls.py` (`co2-moco.md` §4.2): the pre-trained query backbone
//! frozen *in eval mode* (BN running statistics used, never updated), a new fc (N(0, 0.01) weights,
//! zero bias) the only trainable tensors, SGD with momentum 0.9, no weight decay, lr 30, ×0.1 at
//! the milestones; top-1/top-5 on the validation split after every epoch, final and best.
//!
//! The backbone runs on the inference backend, so no gradient can reach it by construction; the
//! resulting classifier (backbone + fc) is saved as `classifier.mpk` for `vireo infer co2`.

use anyhow::{Context, Result};
use burn::{
    data::dataloader::DataLoader,
    module::{AutodiffModule, Module, Param},
    nn::{Initializer, Linear, LinearConfig, loss::CrossEntropyLossConfig},
    optim::{GradientsParams, Optimizer},
    tensor::{Tensor, backend::AutodiffBackend},
};
use core_nets::ResNet;
use core_train::{AtomicRecorder, OptimizerConfig, RunDir, Schedule};
use datasets::{ClassificationBatcher, EpochLoader};

use super::{
    config::{Co2Experiment, LinclsConfig},
    data::Co2Sources,
};

/// One epoch of the linear evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct LinclsRow {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub valid_top1: f64,
    pub valid_top5: f64,
}

pub struct LinclsResult {
    pub rows: Vec<LinclsRow>,
    pub final_top1: f64,
    pub final_top5: f64,
    /// `main_lincls.py` keeps the best top-1 over epochs (`best_acc1`); both are reported.
    pub best_top1: f64,
    pub best_top5: f64,
}

/// Trains a linear classifier on the frozen `backbone` and writes `classifier.mpk` into `run`.
#[allow(clippy::too_many_arguments)]
pub fn linear_evaluation<B: AutodiffBackend>(
    backbone: &ResNet<B::InnerBackend>,
    config: &Co2Experiment,
    settings: &LinclsConfig,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    run: &RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<LinclsResult> {
    let (channels, skip_corrupt, seed) = (
        config.model.feature_channels(),
        config.data.skip_corrupt(),
        config.train.seed,
    );
    let classes = sources.classes.len();
    let mut fc: Linear<B> = LinearConfig::new(channels, classes)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    fc.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
    let mut optimizer = OptimizerConfig {
        lr: settings.lr,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    }
    .sgd()
    .init::<B, Linear<B>>();
    let train = EpochLoader::<B::InnerBackend, _, _>::new(
        sources.train.clone(),
        images.clone(),
        settings.batch_size,
        device.clone(),
    )
    .shuffle(seed ^ 0x6c69_6e63_6c73)
    .skip_failures(skip_corrupt);
    let valid = EpochLoader::<B::InnerBackend, _, _>::new(
        sources.valid.clone(),
        images.clone(),
        settings.batch_size,
        device.clone(),
    )
    .skip_failures(skip_corrupt);
    let statuses = [train.status(), valid.status()];
    let mut schedule = Schedule::new(
        settings.schedule.clone(),
        settings.lr,
        settings.epochs,
        sources.train.len().div_ceil(settings.batch_size),
    );
    let cross_entropy = CrossEntropyLossConfig::new().init(device);
    let mut rows = Vec::new();
    for epoch in 1..=settings.epochs {
        let (mut loss_sum, mut lr_sum, mut steps) = (0.0, 0.0, 0usize);
        for batch in train.iter() {
            let lr = schedule.lr_at(schedule.iteration);
            schedule.iteration += 1;
            // The frozen encoder in eval mode: features without a graph.
            let features = Tensor::<B, 2>::from_inner(backbone.forward_pooled(batch.images));
            let targets = Tensor::from_inner(batch.targets);
            let loss = cross_entropy.forward(fc.forward(features), targets);
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &fc);
            fc = optimizer.step(lr, fc, grads);
            lr_sum += lr;
            steps += 1;
        }
        let (top1, top5) = accuracy(backbone, &fc.valid(), &valid);
        if let Some(failure) = statuses.iter().find_map(|s| s.failure()) {
            anyhow::bail!("linear evaluation stopped: {failure}");
        }
        let row = LinclsRow {
            epoch,
            lr: lr_sum / steps.max(1) as f64,
            train_loss: loss_sum / steps.max(1) as f64,
            valid_top1: top1,
            valid_top5: top5,
        };
        if verbose {
            println!(
                "linear eval {epoch:>3}/{} | lr {:.2e} | train loss {:.4} | valid top-1 {:5.1}% top-5 {:5.1}%",
                settings.epochs, row.lr, row.train_loss, row.valid_top1, row.valid_top5
            );
        }
        rows.push(row);
    }
    let classifier = ResNet {
        fc: Some(fc.valid()),
        ..backbone.clone()
    };
    classifier
        .save_file(run.file("classifier"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("classifier.mpk").display()))?;
    let last = rows.last().cloned().context("no linear-evaluation epoch")?;
    let best = rows
        .iter()
        .max_by(|a, b| a.valid_top1.total_cmp(&b.valid_top1))
        .cloned()
        .unwrap_or(last.clone());
    Ok(LinclsResult {
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

    /// §8.7: after linear evaluation every non-fc tensor, BN running statistics included, is what
    /// it was: the saved classifier's features equal the pre-trained backbone's, in eval mode.
    #[test]
    fn linear_evaluation_changes_nothing_but_fc() {
        let overrides: Vec<String> = [
            "data.train_size=64",
            "data.valid_size=16",
            "data.world.image_size=16",
            "train.batch_size=16",
            "model.queue=64",
            "lincls.epochs=2",
            "lincls.batch_size=16",
        ]
        .map(String::from)
        .to_vec();
        let config = crate::CO2.config("smoke", &overrides).unwrap();
        let device = Default::default();
        let sources = config.sources().unwrap();
        let images = datasets::ClassificationBatcher {
            normalization: config.data.normalization(),
        };
        let backbone = config.model.init_encoder::<Flex>(&device).backbone;
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let settings = config.lincls.clone().unwrap();
        linear_evaluation::<Autodiff<Flex>>(
            &backbone, &config, &settings, &sources, &images, &run, false, &device,
        )
        .unwrap();
        let saved = RunDir::load_model(
            config
                .model
                .backbone
                .clone()
                .with_num_classes(Some(sources.classes.len()))
                .init::<Flex>(&device),
            &run.file("classifier.mpk"),
            &device,
        )
        .unwrap();
        let x = Tensor::<Flex, 4>::random(
            [4, 3, 16, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        saved
            .forward_pooled(x.clone())
            .into_data()
            .assert_eq(&backbone.forward_pooled(x).into_data(), true);
        // ... and the fc did train: it is not its N(0, 0.01) start any more.
        let fc = saved
            .fc
            .unwrap()
            .weight
            .val()
            .abs()
            .max()
            .into_scalar()
            .elem::<f64>();
        assert!(fc > 0.05, "{fc}");
    }
}
