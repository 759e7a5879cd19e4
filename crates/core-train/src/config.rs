//! The parts of an experiment's configuration that every paper shares: the optimisation recipe and
//! the run's length, batch, seed and checkpoint policy. Paper configs embed [`TrainConfig`].

use burn::optim::{
    AdaGradConfig, AdamConfig, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig,
};
use serde::{Deserialize, Serialize};

use crate::ScheduleConfig;

/// Which update rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.SGD`: momentum (dampening 0), optional Nesterov.
    #[default]
    Sgd,
    /// `torch.optim.Adam` with its defaults (betas 0.9 / 0.999, eps 1e-8); SAKE's recipe.
    Adam,
    /// `torch.optim.Adagrad` with its defaults (initial accumulator 0, eps 1e-10, no lr decay);
    /// CompNet's recipe.
    Adagrad,
}

/// SGD with momentum and coupled weight decay on every parameter, as PyTorch's `torch.optim.SGD`
/// (dampening 0) and every official ImageNet script of the WS/BCN papers (`ws.md` §4.1); or Adam
/// with the same coupled (L2) weight decay, as `torch.optim.Adam` (SAKE, `sake.md` §4). Each
/// experiment trains with the kind its paper uses and says so when another is asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    #[serde(default)]
    pub kind: OptimizerKind,
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
}

fn default_momentum() -> f64 {
    0.9
}
fn default_weight_decay() -> f64 {
    1e-4
}

impl OptimizerConfig {
    /// Adam as `torch.optim.Adam(lr, weight_decay)`: betas (0.9, 0.999), eps 1e-8 (burn's
    /// default is 1e-5), weight decay added to the gradient.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig::new().with_epsilon(1e-8).with_weight_decay(
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32)),
        )
    }

    /// Adagrad as `torch.optim.Adagrad(lr, weight_decay)`: eps 1e-10 (burn's default is 1e-5),
    /// no learning-rate decay, weight decay added to the gradient.
    pub fn adagrad(&self) -> AdaGradConfig {
        AdaGradConfig::new().with_epsilon(1e-10).with_weight_decay(
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32)),
        )
    }

    /// Errors unless the config asks for `kind`, the one the experiment trains with.
    pub fn expect_kind(&self, kind: OptimizerKind, experiment: &str) -> Result<(), String> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(format!(
                "train.optimizer.kind = {:?}: {experiment} trains with {kind:?}",
                self.kind
            ))
        }
    }

    pub fn sgd(&self) -> SgdConfig {
        SgdConfig::new()
            .with_momentum((self.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(self.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(self.nesterov)
            }))
            .with_weight_decay(
                (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32)),
            )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    /// Data-loading threads.
    #[serde(default = "default_workers")]
    pub num_workers: usize,
    /// Checkpoints kept on disk (the newest ones).
    #[serde(default = "default_kept")]
    pub checkpoints_kept: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    /// A training loss above this many times the first epoch's mean stops the run as diverged
    /// (non-finite losses always do).
    #[serde(default = "default_divergence_factor")]
    pub divergence_factor: f64,
}

fn default_divergence_factor() -> f64 {
    crate::guard::DEFAULT_DIVERGENCE_FACTOR
}

fn default_workers() -> usize {
    2
}
fn default_kept() -> usize {
    2
}

impl TrainConfig {
    /// The recipe as one optimizer step per `devices` loader batches sees it (burn-train's
    /// gradient accumulation sums their gradients; each batch keeps its own BatchNorm statistics,
    /// as separate devices would): lr ÷ devices and weight decay × devices, which on summed
    /// gradients equal the recipe's values on the mean gradient of the whole batch — what the
    /// official ELASTIC scripts do with `iteration_size` (`elastic.md` §4.1).
    pub fn per_device(&self, devices: usize) -> Self {
        let n = devices.max(1) as f64;
        Self {
            optimizer: crate::OptimizerConfig {
                lr: self.optimizer.lr / n,
                weight_decay: self.optimizer.weight_decay * n,
                ..self.optimizer.clone()
            },
            ..self.clone()
        }
    }

    /// Rejects values no run can use, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, msg: String| if ok { Ok(()) } else { Err(msg) };
        check(
            self.epochs >= 1,
            format!("train.epochs = {}: expected at least 1", self.epochs),
        )?;
        check(
            self.batch_size >= 1,
            format!(
                "train.batch_size = {}: expected at least 1",
                self.batch_size
            ),
        )?;
        check(
            self.checkpoints_kept >= 1,
            format!(
                "train.checkpoints_kept = {}: expected at least 1",
                self.checkpoints_kept
            ),
        )?;
        crate::guard::validate_factor("train.divergence_factor", self.divergence_factor)?;
        let opt = &self.optimizer;
        check(
            opt.lr > 0.0 && opt.lr.is_finite(),
            format!(
                "train.optimizer.lr = {}: expected a positive number",
                opt.lr
            ),
        )?;
        check(
            (0.0..1.0).contains(&opt.momentum),
            format!(
                "train.optimizer.momentum = {}: expected 0 <= momentum < 1",
                opt.momentum
            ),
        )?;
        check(
            opt.weight_decay >= 0.0 && opt.weight_decay.is_finite(),
            format!(
                "train.optimizer.weight_decay = {}: expected >= 0",
                opt.weight_decay
            ),
        )?;
        check(
            self.schedule.warmup_epochs >= 0.0 && self.schedule.warmup_epochs <= self.epochs as f64,
            format!(
                "train.schedule.warmup_epochs = {}: expected 0..={}",
                self.schedule.warmup_epochs, self.epochs
            ),
        )?;
        let (milestones, gamma) = (&self.schedule.milestones, self.schedule.gamma);
        if self.schedule.kind == crate::ScheduleKind::Exponential {
            check(
                gamma > 0.0 && self.schedule.period > 0.0,
                format!(
                    "train.schedule: gamma = {gamma}, period = {}: an exponential schedule needs both > 0",
                    self.schedule.period
                ),
            )?;
        }
        if self.schedule.kind == crate::ScheduleKind::Step {
            check(
                milestones.windows(2).all(|w| w[0] < w[1]),
                format!("train.schedule.milestones = {milestones:?}: expected increasing epochs"),
            )?;
            check(
                gamma > 0.0,
                format!("train.schedule.gamma = {gamma}: expected > 0"),
            )?;
        }
        Ok(())
    }
}
