//! The panoptic training loop (DeepLab2's recipe, `axial-deeplab.md` §4.2): written out rather than
//! run by burn-train's `SupervisedTraining`, because validation needs whole-image post-processing
//! and a dataset-level PQ, not per-batch metric means. It uses the shared pieces: run directory,
//! atomic checkpoints (`core_train::checkpoint::save_checkpoint`, the same three files as
//! burn-train's, so `--resume` works the same way), schedules, `EpochLoader`, plots and report.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoader;
use burn::{
    module::{AutodiffModule, Module},
    optim::{AdamConfig, GradientsParams, Optimizer, decay::WeightDecayConfig},
    tensor::{Tensor, backend::AutodiffBackend},
};
use core_train::{
    AtomicRecorder, DivergenceGuard, Outcome, Schedule, Session,
    checkpoint::load_checkpoint,
    epoch_log::format_duration,
    metrics_csv::{MetricsRow, end_epoch, read_rows},
};

use super::{
    config::PanopticConfig,
    data::loaders,
    evaluate::{draw_predictions, evaluate, write_outputs},
};
use crate::PanopticDeepLab;

/// One finished epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PanopticRow {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub semantic_loss: f64,
    pub center_loss: f64,
    pub offset_loss: f64,
    /// Percent, on the validation split.
    pub pq: f64,
    pub sq: f64,
    pub rq: f64,
    pub pq_things: f64,
    pub pq_stuff: f64,
    pub miou: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for PanopticRow {
    const HEADER: &'static str = "epoch,lr,loss,semantic_loss,center_loss,offset_loss,pq,sq,rq,pq_things,pq_stuff,miou,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.loss,
            self.semantic_loss,
            self.center_loss,
            self.offset_loss,
            self.pq,
            self.sq,
            self.rq,
            self.pq_things,
            self.pq_stuff,
            self.miou,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            loss: v[2],
            semantic_loss: v[3],
            center_loss: v[4],
            offset_loss: v[5],
            pq: v[6],
            sq: v[7],
            rq: v[8],
            pq_things: v[9],
            pq_stuff: v[10],
            miou: v[11],
            train_images_per_s: v[12],
            epoch_seconds: v[13],
        }
    }
}

/// Trains `experiment` into `session`'s run directory (fresh or resumed): Adam with the schedule,
/// PQ/SQ/RQ and mIoU on the validation split every epoch, a checkpoint per epoch.
pub fn fit<B: AutodiffBackend>(
    experiment: PanopticConfig,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    let resume_epoch = session.resume_epoch();
    let verbose = session.verbose;
    let t = &experiment.train;
    B::seed(device, t.seed);
    let start = resume_epoch.unwrap_or(0);
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = experiment.data.sources(t.seed)?;
    experiment.check_labels(&sources.labels)?;
    let (train_loader, valid_loader) = loaders::<B>(&experiment, &sources, device, start);
    let previous_rows = session.previous_rows(read_rows::<PanopticRow>, |r| r.epoch)?;
    let run = session.open::<B, _>(&experiment, device)?;
    let meta = &session.meta;
    let mut model: PanopticDeepLab<B> = experiment.model.init(device);
    let parameters = core_nets::count_parameters::<B, _>(&model);
    let train_len = sources.train.len();
    let iters_per_epoch = train_len.div_ceil(t.batch_size);
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(
            (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)),
        )
        .init::<B, PanopticDeepLab<B>>();
    let mut schedule = Schedule::new(t.schedule.clone(), t.lr, t.epochs, iters_per_epoch);
    if let Some(epoch) = resume_epoch {
        let (loaded, loaded_optimizer, iteration) =
            load_checkpoint(&run.checkpoint_dir(), epoch, model, optimizer, device)
                .with_context(|| format!("loading the epoch {epoch} checkpoint"))?;
        (model, optimizer, schedule.iteration) = (loaded, loaded_optimizer, iteration);
    }
    if verbose {
        println!("run directory: {}", run.path.display());
        println!("model: {}", experiment.model_summary(parameters));
        println!(
            "data: {} train / {} valid images, batch {}, {} epochs on {}",
            train_len,
            sources.valid.len(),
            t.batch_size,
            t.epochs,
            meta.backend
        );
    }
    let labels = &sources.labels;
    let post = experiment.postprocess_config(labels);
    let mut rows = previous_rows;
    let mut error = None;
    let mut guard = DivergenceGuard::new(t.divergence_factor)
        .with_reference(rows.first().filter(|r| r.epoch == 1).map(|r| r.loss));
    let train_status = train_loader.status();
    for epoch in start + 1..=t.epochs {
        let began = Instant::now();
        let (mut sums, mut lr_sum, mut steps, mut images) = ([0f64; 4], 0.0, 0usize, 0usize);
        for batch in train_loader.iter() {
            let lr = schedule.lr_at(schedule.iteration);
            schedule.iteration += 1;
            let out = model.forward(batch.images);
            let loss =
                experiment
                    .loss
                    .forward(out.semantic, out.center, out.offset, &batch.targets);
            let terms = [&loss.total, &loss.semantic, &loss.center, &loss.offset];
            let terms: Vec<f64> = Tensor::cat(terms.map(|t| t.clone().detach()).to_vec(), 0)
                .into_data()
                .iter::<f64>()
                .collect();
            let values = [terms[0], terms[1], terms[2], terms[3]];
            if let Err(reason) = guard.check(values[0], epoch, steps + 1) {
                error = Some(reason);
                break;
            }
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optimizer.step(lr, model, grads);
            for (s, v) in sums.iter_mut().zip(values) {
                *s += v;
            }
            lr_sum += lr;
            steps += 1;
            images += batch.items.len();
        }
        if let (None, Some(failure)) = (&error, train_status.failure()) {
            error = Some(format!("loading data: {failure}"));
        }
        if error.is_some() {
            break;
        }
        let train_seconds = began.elapsed().as_secs_f64();
        let evaluation = match evaluate(&model.valid(), &valid_loader, labels, &post, 0) {
            Ok(evaluation) => evaluation,
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        };
        let steps_f = steps.max(1) as f64;
        let row = PanopticRow {
            epoch,
            lr: lr_sum / steps_f,
            loss: sums[0] / steps_f,
            semantic_loss: sums[1] / steps_f,
            center_loss: sums[2] / steps_f,
            offset_loss: sums[3] / steps_f,
            pq: 100.0 * evaluation.pq.pq,
            sq: 100.0 * evaluation.pq.sq,
            rq: 100.0 * evaluation.pq.rq,
            pq_things: 100.0 * evaluation.pq.pq_things,
            pq_stuff: 100.0 * evaluation.pq.pq_stuff,
            miou: 100.0 * evaluation.miou,
            train_images_per_s: images as f64 / train_seconds.max(1e-9),
            epoch_seconds: began.elapsed().as_secs_f64(),
        };
        end_epoch(
            &run,
            &mut rows,
            row.clone(),
            epoch,
            &model,
            optimizer.to_record(),
            schedule.iteration,
            t.checkpoints_kept,
        )?;
        if verbose {
            println!(
                "epoch {epoch:>3}/{} | lr {:.2e} | loss {:.4} (sem {:.4}, ctr {:.5}, off {:.3}) | valid PQ {:5.1}% (Th {:.1}, St {:.1}) mIoU {:5.1}% | {:.1} img/s | {:.0}s, ETA {}",
                t.epochs,
                row.lr,
                row.loss,
                row.semantic_loss,
                row.center_loss,
                row.offset_loss,
                row.pq,
                row.pq_things,
                row.pq_stuff,
                row.miou,
                row.train_images_per_s,
                row.epoch_seconds,
                format_duration(row.epoch_seconds * (t.epochs - epoch) as f64)
            );
        }
    }
    let model = model.valid();
    if let Some(reason) = error {
        return Err(run.stop(&reason, |error| {
            write_outputs(
                &run,
                meta,
                &experiment,
                parameters,
                &rows,
                None,
                labels,
                resume_epoch,
                Some(error),
            )
        }));
    }
    // The final pictures and the per-class table come from one more pass over the validation
    // split (the same numbers as the last row).
    let evaluation = evaluate(&model, &valid_loader, labels, &post, t.pictures)?;
    draw_predictions(&evaluation.pictures, labels, &run.file("predictions.png"))?;
    write_outputs(
        &run,
        meta,
        &experiment,
        parameters,
        &rows,
        Some(&evaluation),
        labels,
        resume_epoch,
        None,
    )?;
    model
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
    let last = rows
        .last()
        .context("the run finished without a completed epoch")?;
    let summary = format!(
        "valid PQ {:.2} % (SQ {:.2}, RQ {:.2}; things {:.2}, stuff {:.2}), mIoU {:.2} % after {} epochs",
        last.pq, last.sq, last.rq, last.pq_things, last.pq_stuff, last.miou, last.epoch
    );
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric: last.pq,
        summary,
        run,
        extra: Vec::new(),
    })
}
