//! MoCo (+ CO2) pre-training (`co2-moco.md` §2.1, §4.1), then the linear evaluation. The loop is
//! written out on the shared pieces (run directory, atomic checkpoints that hold both encoders and
//! the queue, schedules, the divergence guard, `metrics.csv`, plots, report) rather than run by
//! burn-train's `SupervisedTraining`: every step also moves the key encoder by momentum and
//! replaces the queue's oldest keys, state that burn-train's `TrainStep` (`&self`) cannot change.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::{
    data::dataloader::DataLoader,
    module::{AutodiffModule, Module},
    optim::{GradientsParams, Optimizer},
    tensor::{Tensor, backend::AutodiffBackend},
};
use core_train::{
    AtomicRecorder, DivergenceGuard, Outcome, Schedule, Session,
    checkpoint::{load_checkpoint, write_atomically},
    epoch_log::format_duration,
    metrics_csv::{MetricsRow, end_epoch, read_rows},
};
use datasets::{ClassificationBatcher, EpochLoader};
use rand::seq::SliceRandom;

use super::{
    config::Co2Experiment,
    data::{Co2Sources, PairBatcher},
    evaluate::{embed, knn_accuracy, similarity_samples, write_outputs},
    lincls::{Stage, SupervisedResult, supervised_stage},
};
use crate::{Moco, co2_loss, loss::row_dot};

/// One pre-training epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Co2Row {
    pub epoch: usize,
    pub lr: f64,
    /// InfoNCE + α · consistency.
    pub loss: f64,
    pub info_nce: f64,
    pub consistency: f64,
    /// Mean `q·k` of the positive pairs and `q·n` over the queue.
    pub positive_similarity: f64,
    pub negative_similarity: f64,
    /// kNN top-1 on the validation split (%).
    pub knn_top1: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for Co2Row {
    const HEADER: &'static str = "epoch,lr,loss,info_nce,consistency,positive_similarity,negative_similarity,knn_top1,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.loss,
            self.info_nce,
            self.consistency,
            self.positive_similarity,
            self.negative_similarity,
            self.knn_top1,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            loss: v[2],
            info_nce: v[3],
            consistency: v[4],
            positive_similarity: v[5],
            negative_similarity: v[6],
            knn_top1: v[7],
            train_images_per_s: v[8],
            epoch_seconds: v[9],
        }
    }
}

/// The key batch's order for Shuffle-BN's stand-in: a function of (seed, epoch, step).
fn key_permutation(seed: u64, epoch: usize, step: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut datasets::augmentation_rng(
        seed ^ 0x6b65_795f_626e,
        epoch as u64,
        step as u64,
    ));
    order
}

/// Pre-trains `config` into `session`'s run directory (fresh or resumed), then evaluates linearly.
pub fn fit<B: AutodiffBackend>(
    config: Co2Experiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    if let Some(source) = config.pretrained.clone() {
        return linear_evaluation_only::<B>(config, session, &source, device);
    }
    let t = &config.train;
    B::seed(device, t.seed);
    let resume_epoch = session.resume_epoch();
    let start = resume_epoch.unwrap_or(0);
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = config.sources()?;
    let Co2Sources { views, epoch, .. } = &sources;
    let (views, epoch) = (views.clone(), epoch.clone());
    if views.len() < t.batch_size {
        bail!(
            "{} training images: fewer than train.batch_size = {} (MoCo trains on full batches only)",
            views.len(),
            t.batch_size
        );
    }
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let loader = EpochLoader::<B, _, _>::new(
        views.clone(),
        PairBatcher {
            images: images.clone(),
        },
        t.batch_size,
        device.clone(),
    )
    .shuffle(t.seed)
    .workers(t.num_workers)
    .sharing_epoch(epoch)
    .starting_at_epoch(start)
    .skip_failures(config.data.skip_corrupt())
    .drop_last();
    let status = loader.status();
    let previous_rows = session.previous_rows(read_rows::<Co2Row>, |r| r.epoch)?;
    let run = session.open::<B, _>(&config, device)?;
    let meta = &session.meta;
    let verbose = session.verbose;
    let mut model: Moco<B> = config.model.init(device);
    let parameters = core_nets::count_parameters::<B, _>(&model.encoder_q);
    let steps_per_epoch = views.len() / t.batch_size;
    let mut optimizer = t.optimizer.sgd().init::<B, Moco<B>>();
    let mut schedule = Schedule::new(
        t.schedule.clone(),
        t.optimizer.lr,
        t.epochs,
        steps_per_epoch,
    );
    if let Some(epoch) = resume_epoch {
        let (loaded, loaded_optimizer, iteration) =
            load_checkpoint(&run.checkpoint_dir(), epoch, model, optimizer, device)
                .with_context(|| format!("loading the epoch {epoch} checkpoint"))?;
        (model, optimizer, schedule.iteration) = (loaded, loaded_optimizer, iteration);
    }
    if verbose {
        println!("run directory: {}", run.path.display());
        println!("model: {}", config.model_summary(parameters));
        println!(
            "data: {} pre-training images ({} steps of {}), kNN memory {} / {} validation images, {} epochs on {}",
            views.len(),
            steps_per_epoch,
            t.batch_size,
            sources.train.len(),
            sources.valid.len(),
            t.epochs,
            meta.backend
        );
    }
    if resume_epoch.is_none() {
        // The reference every kNN number is read against: the untrained encoder's.
        let untrained = knn_accuracy(&model.encoder_q.valid(), &sources, &images, &config, device)?;
        write_atomically(
            &run.file("knn-untrained.txt"),
            format!("{untrained}\n").as_bytes(),
        )?;
        if verbose {
            println!("kNN top-1 of the untrained encoder: {untrained:.1} %");
        }
    }
    let (m, tau, key_bn) = (config.model.momentum, config.model.tau, config.model.key_bn);
    let mut rows = previous_rows;
    let mut guard = DivergenceGuard::new(t.divergence_factor)
        .with_reference(rows.first().filter(|r| r.epoch == 1).map(|r| r.loss));
    let mut error = None;
    for epoch_number in start + 1..=t.epochs {
        let began = Instant::now();
        let (mut sums, mut lr_sum, mut steps) = ([0f64; 5], 0.0, 0usize);
        for batch in loader.iter() {
            let lr = schedule.lr_at(schedule.iteration);
            schedule.iteration += 1;
            let n = batch.query.dims()[0];
            // The key encoder moves before it encodes this step's keys (§2.1).
            model = model.momentum_step(m);
            let q = model.encoder_q.forward(batch.query); // [B, dim]
            let permutation = key_permutation(t.seed, epoch_number, steps, n);
            let k = model.keys(batch.key, key_bn, &permutation); // [B, dim], no gradient
            let negatives = model.queue.snapshot(); // [dim, K], before this step's enqueue
            let loss = co2_loss(q.clone(), k.clone(), negatives.clone(), tau, &config.co2);
            let monitored = Tensor::cat(
                vec![
                    loss.total.clone().detach(),
                    loss.info_nce.clone().detach(),
                    loss.consistency.clone().detach(),
                    row_dot(q.clone().detach(), k.clone()).mean(),
                    q.detach().matmul(negatives).mean(),
                ],
                0,
            );
            let values: Vec<f64> = monitored.into_data().iter::<f64>().collect();
            if let Err(reason) = guard.check(values[0], epoch_number, steps + 1) {
                error = Some(reason);
                break;
            }
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optimizer.step(lr, model, grads);
            let Moco {
                encoder_q,
                encoder_k,
                queue,
            } = model;
            model = Moco {
                encoder_q,
                encoder_k,
                queue: queue.enqueue(k),
            };
            for (s, v) in sums.iter_mut().zip(values) {
                *s += v;
            }
            lr_sum += lr;
            steps += 1;
        }
        if let (None, Some(failure)) = (&error, status.failure()) {
            error = Some(format!("loading data: {failure}"));
        }
        if error.is_some() {
            break;
        }
        let train_seconds = began.elapsed().as_secs_f64();
        let encoder = model.encoder_q.valid();
        let knn = match knn_accuracy(&encoder, &sources, &images, &config, device) {
            Ok(top1) => top1,
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        };
        let per_step = steps.max(1) as f64;
        let row = Co2Row {
            epoch: epoch_number,
            lr: lr_sum / per_step,
            loss: sums[0] / per_step,
            info_nce: sums[1] / per_step,
            consistency: sums[2] / per_step,
            positive_similarity: sums[3] / per_step,
            negative_similarity: sums[4] / per_step,
            knn_top1: knn,
            train_images_per_s: (steps * t.batch_size) as f64 / train_seconds.max(1e-9),
            epoch_seconds: began.elapsed().as_secs_f64(),
        };
        end_epoch(
            &run,
            &mut rows,
            row.clone(),
            epoch_number,
            &model,
            optimizer.to_record(),
            schedule.iteration,
            t.checkpoints_kept,
        )?;
        if verbose {
            println!(
                "epoch {epoch_number:>3}/{} | lr {:.2e} | loss {:.4} (InfoNCE {:.4}, CO2 {:.4}) | sim pos {:.3} neg {:.3} | kNN top-1 {:5.1}% | {:.0} img/s | {:.0}s, ETA {}",
                t.epochs,
                row.lr,
                row.loss,
                row.info_nce,
                row.consistency,
                row.positive_similarity,
                row.negative_similarity,
                row.knn_top1,
                row.train_images_per_s,
                row.epoch_seconds,
                format_duration(row.epoch_seconds * (t.epochs - epoch_number) as f64)
            );
        }
    }
    let model = model.valid();
    if let Some(reason) = error {
        return Err(run.stop(&reason, |error| {
            write_outputs(
                &run,
                meta,
                &config,
                parameters,
                &rows,
                &[],
                None,
                None,
                &knn_lines(&run, &rows),
                &sources.classes,
                Some(error),
            )
        }));
    }
    model
        .clone()
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
    // Linear evaluation of the frozen query encoder (`main_lincls.py`), semi-supervised fine-tuning.
    let stages = supervised_stages::<B>(
        &model.encoder_q.backbone,
        &config,
        &sources,
        &images,
        &run,
        verbose,
        device,
    )?;
    let embedding = embed(&model.encoder_q, &sources.valid, &images, &config, device)?;
    let similarities = similarity_samples(&model, &sources, &images, &config, device)?;
    write_outputs(
        &run,
        meta,
        &config,
        parameters,
        &rows,
        &stages,
        Some(&embedding),
        Some(&similarities),
        &knn_lines(&run, &rows),
        &sources.classes,
        None,
    )?;
    let knn = rows.last().map_or(f64::NAN, |r| r.knn_top1);
    let (metric, summary) = match stages.first() {
        Some(first) => (
            first.final_top1,
            format!(
                "{}, kNN top-1 {knn:.2} % after {} epochs",
                stages_summary(&stages),
                rows.len()
            ),
        ),
        None => (
            knn,
            format!("kNN top-1 {knn:.2} % after {} epochs", rows.len()),
        ),
    };
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric,
        summary,
        run,
    })
}

/// The report's kNN lines: the untrained encoder's (the reference) and the last epoch's.
fn knn_lines(run: &core_train::RunDir, rows: &[Co2Row]) -> Vec<(String, f64)> {
    let untrained = std::fs::read_to_string(run.file("knn-untrained.txt"))
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok());
    untrained
        .map(|v| ("untrained encoder (the reference)".to_string(), v))
        .into_iter()
        .chain(
            rows.last()
                .map(|r| (format!("epoch {}", r.epoch), r.knn_top1)),
        )
        .collect()
}

/// The encoder of `source`: a vireo CO2 run (directory or `.mpk`) or an official MoCo checkpoint.
pub fn load_pretrained<B: burn::tensor::backend::Backend>(
    config: &crate::MocoConfig,
    source: &std::path::Path,
    device: &B::Device,
) -> Result<Moco<B>> {
    let model = config.init::<B>(device);
    if source.is_dir() {
        let run = core_train::RunDir::open(source)?;
        return core_train::RunDir::load_model(model, &run.final_weights()?, device);
    }
    if source.extension().is_some_and(|e| e == "mpk") {
        return core_train::RunDir::load_model(model, source, device);
    }
    let (model, report) =
        crate::official::load_moco_checkpoint(model, source, "the MoCo model of this config")
            .with_context(|| format!("pretrained = {}", source.display()))?;
    eprintln!("{}: {}", source.display(), report.summary());
    Ok(model)
}

/// `pretrained` set: the kNN of that encoder and its linear evaluation, no pre-training.
fn linear_evaluation_only<B: AutodiffBackend>(
    config: Co2Experiment,
    mut session: Session,
    source: &std::path::Path,
    device: &B::Device,
) -> Result<Outcome> {
    B::seed(device, config.train.seed);
    let sources = config.sources()?;
    let model = load_pretrained::<B::InnerBackend>(&config.model, source, device)?;
    let run = session.open::<B, _>(&config, device)?;
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let parameters = core_nets::count_parameters::<B::InnerBackend, _>(&model.encoder_q);
    let knn = knn_accuracy(&model.encoder_q, &sources, &images, &config, device)?;
    if session.verbose {
        println!("run directory: {}", run.path.display());
        println!(
            "pretrained encoder {}: kNN top-1 {knn:.2} %",
            source.display()
        );
    }
    let stages = supervised_stages::<B>(
        &model.encoder_q.backbone,
        &config,
        &sources,
        &images,
        &run,
        session.verbose,
        device,
    )?;
    let first = stages
        .first()
        .context("pretrained is set but neither [lincls] nor [semi] is")?;
    let embedding = embed(&model.encoder_q, &sources.valid, &images, &config, device)?;
    write_outputs(
        &run,
        &session.meta,
        &config,
        parameters,
        &[],
        &stages,
        Some(&embedding),
        Some(&similarity_samples(
            &model, &sources, &images, &config, device,
        )?),
        &[(format!("pretrained encoder {}", source.display()), knn)],
        &sources.classes,
        None,
    )?;
    let metric = first.final_top1;
    let summary = format!(
        "{}, kNN top-1 {knn:.2} % of {}",
        stages_summary(&stages),
        source.display()
    );
    if session.verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric,
        summary,
        run,
    })
}

/// The configured supervised stages on the pre-trained `backbone`: linear evaluation, then
/// semi-supervised fine-tuning.
fn supervised_stages<B: AutodiffBackend>(
    backbone: &core_nets::ResNet<B::InnerBackend>,
    config: &Co2Experiment,
    sources: &Co2Sources,
    images: &ClassificationBatcher,
    run: &core_train::RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<Vec<SupervisedResult>> {
    let stages = config
        .lincls
        .iter()
        .map(Stage::Linear)
        .chain(config.semi.iter().map(Stage::Semi));
    stages
        .map(|stage| {
            supervised_stage::<B>(
                stage, backbone, config, sources, images, run, verbose, device,
            )
        })
        .collect()
}

/// "linear evaluation top-1 45.50 % (best 47.00 %); semi-supervised ... top-1 ..."
fn stages_summary(stages: &[SupervisedResult]) -> String {
    stages
        .iter()
        .map(|s| {
            format!(
                "{} top-1 {:.2} % (best {:.2} %)",
                s.name, s.final_top1, s.best_top1
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
