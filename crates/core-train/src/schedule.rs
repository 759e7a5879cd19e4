//! Learning-rate schedules of the papers' recipes: step decay (WS/BCN ImageNet, `ws.md` §4.1) and
//! cosine (Axial, MoCo v2), polynomial (DeepLab2's panoptic recipes, `axial-deeplab.md` §4.2), each
//! with an optional linear warm-up, evaluated per iteration.

use burn::{lr_scheduler::LrScheduler, tensor::backend::Backend};
use serde::{Deserialize, Serialize};

/// The shape of the schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Multiply by `gamma` at each of `milestones` (epochs), as PyTorch's `MultiStepLR`.
    Step,
    /// Half-cosine from the base rate to `min_lr` over the run, per iteration.
    Cosine,
    /// `(base − min_lr)·(1 − t/T)^power + min_lr` per iteration, TensorFlow's `PolynomialDecay`.
    Poly,
    /// `base · gamma^(epoch / period)`, set once per epoch (0-based epoch); SAKE's
    /// `1e-4 · 0.001^(e/20)` (`sake.md` §8.4).
    Exponential,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// Step: epochs at which the rate is multiplied by `gamma`.
    #[serde(default)]
    pub milestones: Vec<usize>,
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Cosine, poly: the final rate.
    #[serde(default)]
    pub min_lr: f64,
    /// Poly: the exponent (0.9 in DeepLab2).
    #[serde(default = "default_power")]
    pub power: f64,
    /// Exponential: the epochs over which the rate falls by `gamma`.
    #[serde(default)]
    pub period: f64,
    /// Linear warm-up from `warmup_start · lr` over this many epochs (0: none).
    #[serde(default)]
    pub warmup_epochs: f64,
    #[serde(default)]
    pub warmup_start: f64,
}

fn default_gamma() -> f64 {
    0.1
}
fn default_power() -> f64 {
    0.9
}

/// A schedule bound to a run: base rate, epochs and iterations per epoch.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub config: ScheduleConfig,
    pub base_lr: f64,
    pub epochs: usize,
    pub iters_per_epoch: usize,
    /// Iterations already taken; `step` returns the rate of iteration `iteration` and advances.
    pub iteration: usize,
}

impl Schedule {
    pub fn new(
        config: ScheduleConfig,
        base_lr: f64,
        epochs: usize,
        iters_per_epoch: usize,
    ) -> Self {
        Self {
            config,
            base_lr,
            epochs,
            iters_per_epoch: iters_per_epoch.max(1),
            iteration: 0,
        }
    }

    /// The learning rate of (0-based) iteration `it`.
    pub fn lr_at(&self, it: usize) -> f64 {
        let per_epoch = self.iters_per_epoch as f64;
        let epoch_f = it as f64 / per_epoch;
        let warmup = self.config.warmup_epochs;
        if epoch_f < warmup {
            let start = self.config.warmup_start;
            return self.base_lr * (start + (1.0 - start) * epoch_f / warmup);
        }
        let config = &self.config;
        match config.kind {
            ScheduleKind::Step => {
                let epoch = it / self.iters_per_epoch;
                let passed = config.milestones.iter().filter(|&&m| epoch >= m).count();
                self.base_lr * config.gamma.powi(passed as i32)
            }
            ScheduleKind::Cosine | ScheduleKind::Poly => {
                let min_lr = config.min_lr;
                let total = (self.epochs as f64 - warmup).max(f64::EPSILON) * per_epoch;
                let progress = ((it as f64 - warmup * per_epoch) / total).clamp(0.0, 1.0);
                let factor = if config.kind == ScheduleKind::Poly {
                    (1.0 - progress).powf(config.power)
                } else {
                    0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                };
                min_lr + (self.base_lr - min_lr) * factor
            }
            ScheduleKind::Exponential => {
                let epoch = (it / self.iters_per_epoch) as f64;
                self.base_lr * config.gamma.powf(epoch / config.period)
            }
            ScheduleKind::Constant => self.base_lr,
        }
    }
}

impl LrScheduler for Schedule {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> f64 {
        let lr = self.lr_at(self.iteration);
        self.iteration += 1;
        lr
    }

    fn to_record<B: Backend>(&self) -> usize {
        self.iteration
    }

    fn load_record<B: Backend>(mut self, record: usize) -> Self {
        self.iteration = record;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup_epochs: f64) -> Schedule {
        let config = ScheduleConfig {
            kind,
            milestones: vec![30, 60],
            gamma: 0.1,
            min_lr: 0.0,
            power: 0.9,
            period: 0.0,
            warmup_epochs,
            warmup_start: 0.0,
        };
        Schedule::new(config, 0.1, 90, 10)
    }

    #[test]
    fn step_decays_at_milestones() {
        let s = schedule(ScheduleKind::Step, 0.0);
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(299), 0.1);
        assert!((s.lr_at(300) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(600) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_with_warmup() {
        let s = schedule(ScheduleKind::Cosine, 10.0);
        assert_eq!(s.lr_at(0), 0.0);
        assert!((s.lr_at(50) - 0.05).abs() < 1e-12);
        assert!((s.lr_at(100) - 0.1).abs() < 1e-12);
        // Half-way through the cosine part: half the base rate.
        assert!((s.lr_at(100 + 400) - 0.05).abs() < 1e-12);
        assert!(s.lr_at(899) < 1e-4);
    }

    #[test]
    fn poly_decays_to_zero_with_power() {
        let s = schedule(ScheduleKind::Poly, 0.0);
        assert_eq!(s.lr_at(0), 0.1);
        // Half-way: 0.1 · 0.5^0.9.
        assert!((s.lr_at(450) - 0.1 * 0.5f64.powf(0.9)).abs() < 1e-12);
        assert!(s.lr_at(899) < 1e-3);
    }

    #[test]
    fn exponential_is_set_per_epoch_as_sakes_schedule() {
        // sake.md §8.4: 1e-4 · 0.001^(e/20), 20 epochs.
        let expected = [
            1e-4,
            7.079458e-5,
            5.011872e-5,
            3.548134e-5,
            2.511886e-5,
            1.778279e-5,
            1.258925e-5,
            8.912509e-6,
            6.309573e-6,
            4.466836e-6,
            3.162278e-6,
            2.238721e-6,
            1.584893e-6,
            1.122018e-6,
            7.943282e-7,
            5.623413e-7,
            3.981072e-7,
            2.818383e-7,
            1.995262e-7,
            1.412538e-7,
        ];
        let config = ScheduleConfig {
            kind: ScheduleKind::Exponential,
            milestones: Vec::new(),
            gamma: 0.001,
            min_lr: 0.0,
            power: 0.9,
            period: 20.0,
            warmup_epochs: 0.0,
            warmup_start: 0.0,
        };
        let s = Schedule::new(config, 1e-4, 20, 7);
        for (epoch, lr) in expected.into_iter().enumerate() {
            for step in [0, 6] {
                let got = s.lr_at(epoch * 7 + step);
                assert!(
                    (got - lr).abs() <= 1e-6 * lr,
                    "epoch {epoch}: {got} vs {lr}"
                );
            }
        }
    }

    #[test]
    fn record_round_trip_resumes_the_sequence() {
        let mut a = schedule(ScheduleKind::Cosine, 1.0);
        for _ in 0..37 {
            a.step();
        }
        let record = <Schedule as LrScheduler>::to_record::<burn::backend::Flex>(&a);
        let mut b = schedule(ScheduleKind::Cosine, 1.0).load_record::<burn::backend::Flex>(record);
        assert_eq!(a.step(), b.step());
    }
}
