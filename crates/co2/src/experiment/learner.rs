//! MoCo (+ CO2) pre-training on burn-train's Learner (`co2-moco.md` §2.1, §4.1).
//!
//! * [`MocoTraining`] is the model the Learner trains. Its `TrainStep` is one MoCo step (queries,
//!   keys from the key encoder in the shuffled order of the key-BN split, InfoNCE + CO2 against the
//!   queue as it was before this step); its `optimize` is SGD on the query encoder followed by the
//!   key encoder's momentum update — which is where the key encoder must move: the official code
//!   moves it at the start of the next step, before that step's keys, from the same query weights.
//! * [`MocoStrategy`] is the custom learning strategy that runs the epochs: it shuffles each key
//!   batch as a function of (seed, epoch, step), so a resumed run sees the same order; writes each
//!   step's keys into the queue after the optimizer step; and validates with the kNN monitor
//!   (the training split embedded as the memory, each validation image voting with it).
//!
//! Everything else is burn-train's: the Learner (model, SGD, schedule), its checkpointer (the model
//! record holds both encoders, the queue and its pointer, so `--resume` continues exactly), the
//! metrics and their logger (`metrics.csv`), the interrupter the divergence guard stops.

use std::sync::Arc;

use anyhow::Result;
use burn::{
    data::dataloader::Progress,
    module::{AutodiffModule, Module},
    optim::{GradientsParams, Optimizer},
    tensor::{
        Tensor,
        backend::{AutodiffBackend, Backend},
    },
    train::{
        EventProcessorTraining, InferenceStep, ItemLazy, Learner, LearnerEvent,
        SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainOutput,
        TrainStep, TrainingComponents, TrainingItem, ValidLoader,
        metric::{
            Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
            NumericAttributes, NumericEntry, SerializedEntry,
            state::{FormatOptions, NumericMetricState},
        },
    },
};
use core_train::{Components, StepMetric, StepValues};
use datasets::ClassificationBatch;
use rand::seq::SliceRandom;

use super::{data::PairBatch, evaluate::KnnMemory};
use crate::{Co2Config, Encoder, KeyBn, Moco, co2_loss, loss::row_dot};

/// What one MoCo step optimises: InfoNCE's temperature, the CO2 term, how the key encoder's BN
/// sees the keys, the key encoder's momentum.
#[derive(Clone, Debug)]
pub struct Objective {
    pub tau: f64,
    pub co2: Co2Config,
    pub key_bn: KeyBn,
    pub momentum: f64,
}

/// MoCo as burn-train's Learner trains it: the model (saved whole in every checkpoint), the
/// objective, and — on the inference side, during validation — the kNN memory.
#[derive(Module, Debug)]
pub struct MocoTraining<B: Backend> {
    pub moco: Moco<B>,
    #[module(skip)]
    pub objective: Objective,
    /// Set by the strategy before each validation (the training split, embedded by this epoch's
    /// query encoder).
    #[module(skip)]
    pub memory: Option<Arc<KnnMemory>>,
}

impl<B: Backend> MocoTraining<B> {
    pub fn new(moco: Moco<B>, objective: Objective) -> Self {
        Self {
            moco,
            objective,
            memory: None,
        }
    }

    /// This step's keys `[B, dim]` written over the queue's oldest.
    pub fn enqueued(self, keys: Tensor<B, 2>) -> Self {
        let Moco {
            encoder_q,
            encoder_k,
            queue,
        } = self.moco;
        Self {
            moco: Moco {
                encoder_q,
                encoder_k,
                queue: queue.enqueue(keys),
            },
            ..self
        }
    }
}

/// One step's output: the monitored values and the keys the strategy enqueues.
pub struct MocoOutput<B: Backend> {
    /// `[5]`, no gradient: total loss, InfoNCE, consistency, mean positive `q·k`, mean negative
    /// `q·n` over the queue.
    pub monitored: Tensor<B, 1>,
    /// `[B, dim]`, no gradient.
    pub keys: Tensor<B, 2>,
}

impl<B: Backend> ItemLazy for MocoOutput<B> {
    type ItemSync = StepValues;

    fn sync(self) -> StepValues {
        StepValues {
            batch: self.keys.dims()[0],
            values: self.monitored.into_data().iter::<f64>().collect(),
        }
    }
}

impl<B: AutodiffBackend> TrainStep for MocoTraining<B> {
    type Input = PairBatch<B>;
    type Output = MocoOutput<B>;

    fn step(&self, batch: PairBatch<B>) -> TrainOutput<MocoOutput<B>> {
        let o = &self.objective;
        let q = self.moco.encoder_q.forward(batch.query); // [B, dim]
        let k = self.moco.keys(batch.key, o.key_bn, &batch.key_order); // [B, dim], no gradient
        let negatives = self.moco.queue.snapshot(); // [dim, K], before this step's enqueue
        let loss = co2_loss(q.clone(), k.clone(), negatives.clone(), o.tau, &o.co2);
        let monitored = Tensor::cat(
            vec![
                loss.total.clone().detach(),
                loss.info_nce.detach(),
                loss.consistency.detach(),
                row_dot(q.clone().detach(), k.clone()).mean(),
                q.detach().matmul(negatives).mean(),
            ],
            0,
        );
        TrainOutput::new(
            self,
            loss.total.backward(),
            MocoOutput { monitored, keys: k },
        )
    }

    /// SGD on the query encoder (the key encoder and the queue have no gradient), then the key
    /// encoder moves towards the new query weights by `1 − m`.
    fn optimize<AB, O>(self, optim: &mut O, lr: f64, grads: GradientsParams) -> Self
    where
        AB: AutodiffBackend,
        O: Optimizer<Self, AB>,
        Self: AutodiffModule<AB>,
    {
        let stepped = optim.step(lr, self, grads);
        let m = stepped.objective.momentum;
        Self {
            moco: stepped.moco.momentum_step(m),
            ..stepped
        }
    }
}

/// The kNN monitor's verdict on one validation batch.
#[derive(Clone, Copy, Debug)]
pub struct KnnOutput {
    pub correct: usize,
    pub count: usize,
}

impl ItemLazy for KnnOutput {
    type ItemSync = KnnOutput;

    fn sync(self) -> KnnOutput {
        self
    }
}

impl Adaptor<KnnOutput> for KnnOutput {
    fn adapt(&self) -> KnnOutput {
        *self
    }
}

impl<B: Backend> InferenceStep for MocoTraining<B> {
    type Input = ClassificationBatch<B>;
    type Output = KnnOutput;

    /// Classifies the batch by the weighted vote of its nearest training embeddings.
    fn step(&self, batch: ClassificationBatch<B>) -> KnnOutput {
        let memory = self
            .memory
            .as_ref()
            .expect("MocoStrategy sets the kNN memory before it validates");
        let queries: Vec<f32> = self
            .moco
            .encoder_q
            .forward(batch.images)
            .into_data()
            .iter::<f32>()
            .collect();
        let labels: Vec<usize> = batch
            .targets
            .into_data()
            .iter::<i64>()
            .map(|l| l as usize)
            .collect();
        KnnOutput {
            correct: memory.correct(&queries, &labels),
            count: labels.len(),
        }
    }
}

/// The key batch's order for the key-BN split: a function of (seed, epoch, step), so a resumed
/// run shuffles as the uninterrupted one did.
pub fn key_permutation(seed: u64, epoch: usize, step: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut datasets::augmentation_rng(
        seed ^ 0x6b65_795f_626e,
        epoch as u64,
        step as u64,
    ));
    order
}

/// Embeds the labelled training split with the current query encoder: the kNN memory.
pub type MemoryOf<B> =
    Arc<dyn Fn(&Encoder<<B as AutodiffBackend>::InnerBackend>) -> Result<KnnMemory> + Send + Sync>;

/// burn-train's learning strategy for MoCo (see the module's documentation).
pub struct MocoStrategy<B: AutodiffBackend> {
    pub seed: u64,
    pub memory: MemoryOf<B>,
}

type Lc<B> = Components<B, MocoTraining<B>>;

impl<B: AutodiffBackend> SupervisedLearningStrategy<Lc<B>> for MocoStrategy<B> {
    fn fit(
        &self,
        components: TrainingComponents<Lc<B>>,
        mut learner: Learner<Lc<B>>,
        train: TrainLoader<Lc<B>>,
        valid: ValidLoader<Lc<B>>,
        starting_epoch: usize,
    ) -> (MocoTraining<B>, SupervisedTrainingEventProcessor<Lc<B>>) {
        let TrainingComponents {
            num_epochs,
            mut checkpointer,
            interrupter,
            mut event_processor,
            event_store,
            ..
        } = components;
        for epoch in starting_epoch..=num_epochs {
            let global = Progress {
                items_processed: epoch,
                items_total: num_epochs,
            };
            let mut batches = train.iter();
            let mut iteration = 0;
            while let Some(mut batch) = batches.next() {
                learner.lr_step();
                batch.key_order =
                    key_permutation(self.seed, epoch, iteration, batch.key_order.len());
                iteration += 1;
                let output = learner.train_step(batch);
                learner.optimizer_step(output.grads);
                let queued = learner.model().enqueued(output.item.keys.clone());
                learner.load_model(queued.into_record());
                event_processor.process_train(LearnerEvent::ProcessedItem(TrainingItem::new(
                    output.item,
                    batches.progress(),
                    global.clone(),
                    Some(iteration),
                    Some(learner.lr_current()),
                )));
                if interrupter.should_stop() {
                    break;
                }
            }
            event_processor.process_train(LearnerEvent::EndEpoch(epoch));
            if interrupter.should_stop() {
                break;
            }
            let mut model = learner.model().valid();
            match (self.memory)(&model.moco.encoder_q) {
                Ok(memory) => model.memory = Some(Arc::new(memory)),
                Err(e) => {
                    interrupter.stop(Some(&format!("the kNN memory: {e:#}")));
                    break;
                }
            }
            let mut batches = valid.iter();
            let mut iteration = 0;
            while let Some(batch) = batches.next() {
                iteration += 1;
                event_processor.process_valid(LearnerEvent::ProcessedItem(TrainingItem::new(
                    model.step(batch),
                    batches.progress(),
                    global.clone(),
                    Some(iteration),
                    None,
                )));
            }
            event_processor.process_valid(LearnerEvent::EndEpoch(epoch));
            if interrupter.should_stop() {
                break;
            }
            if let Some(checkpointer) = &mut checkpointer {
                checkpointer.checkpoint(&learner, epoch, &event_store);
            }
        }
        (learner.model(), event_processor)
    }
}

/// The names of [`MocoOutput::monitored`]'s values, in order (`metrics.csv`'s columns, read by
/// [`crate::experiment::train::Co2Row`]).
pub const STEP_VALUES: [&str; 5] = [
    "Loss",
    "InfoNCE",
    "CO2 consistency",
    "Positive similarity",
    "Negative similarity",
];

/// The step metrics of [`STEP_VALUES`] (the positive similarity is better higher).
pub fn step_metrics() -> [StepMetric; 5] {
    std::array::from_fn(|index| StepMetric::new(STEP_VALUES[index], index, index == 3))
}

/// kNN top-1 (%) over the validation split.
#[derive(Clone)]
pub struct KnnMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl KnnMetric {
    pub const NAME: &str = "kNN top-1";
}

impl Default for KnnMetric {
    fn default() -> Self {
        Self {
            name: Arc::new(Self::NAME.to_string()),
            state: NumericMetricState::new(),
        }
    }
}

impl Metric for KnnMetric {
    type Input = KnnOutput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &KnnOutput, _metadata: &MetricMetadata) -> SerializedEntry {
        let top1 = 100.0 * item.correct as f64 / item.count.max(1) as f64;
        self.state.update(
            top1,
            item.count,
            FormatOptions::new(self.name()).unit("%").precision(2),
        )
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("%".into()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for KnnMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
