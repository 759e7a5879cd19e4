//! The supervised loop on burn-train's `SupervisedTraining` (classification's top-1/top-5 and
//! loss, or a task's own metrics): SGD + schedule, atomic checkpoints every epoch, resume, a NaN/Inf guard, quiet progress
//! when headless (burn's TUI when interactive) and per-epoch rows for `metrics.csv`.

use std::{io::IsTerminal, sync::Arc};

use anyhow::Result;
use burn::{
    backend::Flex,
    data::dataloader::DataLoader,
    module::AutodiffModule,
    optim::{Adam, Sgd, adaptor::OptimizerAdaptor},
    tensor::backend::AutodiffBackend,
    train::{
        ClassificationOutput, InferenceStep, Interrupter, ItemLazy, Learner,
        LearningComponentsMarker, LearningResult, MultiLabelClassificationOutput,
        SupervisedTraining, TrainStep,
        checkpoint::KeepLastNCheckpoints,
        metric::{
            AccuracyMetric, Adaptor, LearningRateMetric, LossMetric, Metric, MetricMetadata,
            MetricName, SerializedEntry, TopKAccuracyMetric,
        },
        renderer::{
            EvaluationName, EvaluationProgress, MetricState, MetricsRenderer,
            MetricsRendererEvaluation, MetricsRendererTraining, ProgressType, TrainingProgress,
        },
    },
};

use crate::{AtomicRecorder, EpochLog, EpochMetrics, EpochRow, RunDir, Schedule, TrainConfig};

/// What a finished (or stopped) run gives back.
pub struct TrainOutcome<M, R = EpochRow> {
    /// The model after the last completed step, on the inference backend.
    pub model: M,
    pub rows: Vec<R>,
}

/// How to run one supervised training.
pub struct FitOptions<'a, R = EpochRow> {
    pub run: &'a RunDir,
    pub train: &'a TrainConfig,
    /// Classes of the task (classification sizes its top-k metric by it).
    pub num_classes: usize,
    pub iters_per_epoch: usize,
    /// Images per training epoch.
    pub train_images: usize,
    /// Continue after this completed epoch (its checkpoint must exist).
    pub resume_epoch: Option<usize>,
    pub log: EpochLog<R>,
    /// Stops the run with a message (the NaN guard's, a data loader's failure); the epoch it
    /// interrupts leaves no checkpoint.
    pub stop: Interrupter,
    /// Sum the gradients of this many loader batches per optimizer step (each batch keeps its
    /// own BatchNorm statistics, as separate devices would); none: a step per batch.
    pub grad_accumulation: Option<usize>,
}

/// vireo's SGD for `M` (the default optimizer of [`Components`]).
pub type SgdOf<B, M> = OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, M, B>;

/// vireo's Adam for `M` (SAKE).
pub type AdamOf<B, M> = OptimizerAdaptor<Adam, M, B>;

/// burn-train's learning components of `M` with vireo's schedule and optimizer `O` (SGD unless
/// said): what a custom learning strategy is implemented for.
pub type Components<B, M, O = SgdOf<B, M>> = LearningComponentsMarker<B, Schedule, M, O>;

/// burn-train's supervised training of `M` with vireo's schedule and optimizer `O`: what a task's
/// metric set (and, where the task needs one, its own learning strategy) is registered on
/// ([`fit_supervised`], [`fit_supervised_with`]).
pub type Training<B, M, O = SgdOf<B, M>> = SupervisedTraining<Components<B, M, O>>;

/// Trains `model` for single-label classification (top-1, top-5, loss) with SGD and returns it.
pub fn fit_classifier<B, M>(
    model: M,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    options: FitOptions<'_>,
) -> Result<TrainOutcome<M::InnerModule>>
where
    B: AutodiffBackend,
    M: TrainStep<Output = ClassificationOutput<B>>
        + AutodiffModule<B>
        + core::fmt::Display
        + 'static,
    M::InnerModule: InferenceStep<Output = ClassificationOutput<B::InnerBackend>>,
{
    options
        .train
        .optimizer
        .expect_kind(crate::config::OptimizerKind::Sgd, "this experiment")
        .map_err(anyhow::Error::msg)?;
    let optimizer = options.train.optimizer.sgd().init::<B, M>();
    fit_classifier_with(model, optimizer, train_loader, valid_loader, options)
}

/// [`fit_classifier`] with the optimizer given (CompNet's Adagrad).
pub fn fit_classifier_with<B, M, O>(
    model: M,
    optimizer: O,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    options: FitOptions<'_>,
) -> Result<TrainOutcome<M::InnerModule>>
where
    B: AutodiffBackend,
    M: TrainStep<Output = ClassificationOutput<B>>
        + AutodiffModule<B>
        + core::fmt::Display
        + 'static,
    M::InnerModule: InferenceStep<Output = ClassificationOutput<B::InnerBackend>>,
    O: burn::optim::Optimizer<M, B> + 'static,
{
    let classes = options.num_classes;
    fit_supervised_with(
        model,
        optimizer,
        train_loader,
        valid_loader,
        options,
        |training| {
            training.metrics((
                AccuracyMetric::new(),
                TopKAccuracyMetric::new(classes.min(5)),
                LossMetric::new(),
            ))
        },
    )
}

/// Trains `model` on burn-train's `SupervisedTraining` with the shared pieces — atomic
/// checkpoints every epoch, resume, the divergence guard, the epoch log (`metrics.csv`, one line
/// per epoch), quiet progress when headless — and the task's metrics, which `metrics` registers.
/// A non-finite or exploding loss stops the run with an error naming the last good checkpoint.
pub fn fit_supervised<B, M, R>(
    model: M,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    options: FitOptions<'_, R>,
    metrics: impl FnOnce(Training<B, M>) -> Training<B, M>,
) -> Result<TrainOutcome<M::InnerModule, R>>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M::Output as ItemLazy>::ItemSync: Adaptor<LossValue>,
    R: EpochMetrics,
{
    options
        .train
        .optimizer
        .expect_kind(crate::config::OptimizerKind::Sgd, "this experiment")
        .map_err(anyhow::Error::msg)?;
    let optimizer = options.train.optimizer.sgd().init::<B, M>();
    fit_supervised_with(
        model,
        optimizer,
        train_loader,
        valid_loader,
        options,
        metrics,
    )
}

/// [`fit_supervised`] with the optimizer given (SAKE's Adam: `train.optimizer.adam().init()`).
pub fn fit_supervised_with<B, M, R, O>(
    model: M,
    optimizer: O,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    options: FitOptions<'_, R>,
    metrics: impl FnOnce(Training<B, M, O>) -> Training<B, M, O>,
) -> Result<TrainOutcome<M::InnerModule, R>>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M::Output as ItemLazy>::ItemSync: Adaptor<LossValue>,
    R: EpochMetrics,
    O: burn::optim::Optimizer<M, B> + 'static,
{
    let FitOptions {
        run,
        train,
        num_classes: _,
        iters_per_epoch,
        train_images,
        resume_epoch,
        log,
        stop,
        grad_accumulation,
    } = options;
    let schedule = Schedule::new(
        train.schedule.clone(),
        train.optimizer.lr,
        train.epochs,
        iters_per_epoch,
    );
    let guard = crate::DivergenceGuard::new(train.divergence_factor).with_reference(
        log.rows()
            .first()
            .filter(|r| r.epoch() == 1)
            .and_then(|r| r.reference_loss()),
    );
    let training: Training<B, M, O> =
        SupervisedTraining::new(&run.path, train_loader, valid_loader)
            .with_application_logger(None)
            .with_file_checkpointer(AtomicRecorder)
            .with_checkpointing_strategy(KeepLastNCheckpoints::new(train.checkpoints_kept))
            .with_metric_logger(log.logger(
                run.file("metrics.csv"),
                train.epochs,
                train_images,
                stop.clone(),
            ))
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train(DivergenceMetric {
                stop: stop.clone(),
                name: Arc::new("Loss finite".into()),
                guard,
            })
            .with_interrupter(stop.clone())
            .num_epochs(train.epochs);
    let mut training = metrics(training);
    if let Some(n) = grad_accumulation.filter(|&n| n > 1) {
        training = training.grads_accumulation(n);
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(QuietRenderer);
    }
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    let LearningResult { model, .. } = training.launch(Learner::new(model, optimizer, schedule));
    let rows = log.rows();
    if let Some(message) = stop.get_message() {
        // burn-train checkpoints an epoch whose validation was interrupted: drop checkpoints
        // without a complete metrics row, so a resume recomputes that epoch.
        // Never below the checkpoint this run resumed from.
        let last_row = rows
            .last()
            .map_or(0, |r| r.epoch())
            .max(resume_epoch.unwrap_or(0));
        crate::checkpoint::remove_checkpoints_after(&run.checkpoint_dir(), last_row);
        return Err(run.stop(&message, |_| Ok(())));
    }
    Ok(TrainOutcome { model, rows })
}

/// The loss value a step produced, read on burn-train's metric thread (what the divergence guard
/// of [`fit_supervised`] checks: a task's output adapts to it).
pub struct LossValue(pub f64);

/// The first value of a loss tensor.
fn loss_value(loss: &burn::tensor::Tensor<Flex, 1>) -> LossValue {
    LossValue(
        loss.clone()
            .into_data()
            .iter::<f64>()
            .next()
            .unwrap_or(f64::NAN),
    )
}

impl Adaptor<LossValue> for ClassificationOutput<Flex> {
    fn adapt(&self) -> LossValue {
        loss_value(&self.loss)
    }
}

impl Adaptor<LossValue> for MultiLabelClassificationOutput<Flex> {
    fn adapt(&self) -> LossValue {
        loss_value(&self.loss)
    }
}

/// Stops training at the first non-finite or exploding loss ([`crate::DivergenceGuard`]), before
/// the epoch's checkpoint is written.
#[derive(Clone)]
struct DivergenceMetric {
    stop: Interrupter,
    name: MetricName,
    guard: crate::DivergenceGuard,
}

impl Metric for DivergenceMetric {
    type Input = LossValue;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, loss: &LossValue, metadata: &MetricMetadata) -> SerializedEntry {
        let epoch = metadata.global_progress.items_processed;
        if let Err(reason) = self
            .guard
            .check(loss.0, epoch, metadata.iteration.unwrap_or(0))
        {
            self.stop.stop(Some(&reason));
        }
        let finite = loss.0.is_finite().to_string();
        SerializedEntry::new(finite.clone(), finite)
    }

    fn clear(&mut self) {}
}

/// Headless runs print one line per epoch (see [`crate::epoch_log`]); burn's CLI renderer would
/// print every batch.
struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
    fn render_train(&mut self, _item: TrainingProgress, _progress: Vec<ProgressType>) {}
    fn render_valid(&mut self, _item: TrainingProgress, _progress: Vec<ProgressType>) {}
    fn on_train_end(
        &mut self,
        _summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn render_test(&mut self, _item: EvaluationProgress, _progress: Vec<ProgressType>) {}
    fn on_test_end(
        &mut self,
        _summary: Option<burn::train::LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: burn::train::metric::MetricDefinition) {}
}
