//! The divergence guard every paper's loop uses: a run stops at the first loss that is not finite
//! or that explodes above `factor ×` its first epoch's mean (`train.divergence_factor`), before the
//! epoch it happens in is checkpointed, so the last good checkpoint stays.

/// Watches one run's training losses.
#[derive(Clone, Debug)]
pub struct DivergenceGuard {
    factor: f64,
    /// The first epoch's mean loss, once that epoch has ended (or from a resumed run's history).
    reference: Option<f64>,
    /// Sum and count of the losses of the first epoch seen.
    first: (f64, usize),
    first_epoch: Option<usize>,
}

/// `train.divergence_factor`'s default: a loss 10,000× its first epoch's mean is a divergence.
pub const DEFAULT_DIVERGENCE_FACTOR: f64 = 1e4;

impl DivergenceGuard {
    pub fn new(factor: f64) -> Self {
        Self {
            factor,
            reference: None,
            first: (0.0, 0),
            first_epoch: None,
        }
    }

    /// A resumed run compares against its stored first epoch's mean training loss.
    pub fn with_reference(mut self, first_epoch_mean: Option<f64>) -> Self {
        self.reference = first_epoch_mean.filter(|m| m.is_finite() && *m > 0.0);
        self
    }

    /// Checks one step's loss (epoch and iteration 1-based, for the message).
    pub fn check(&mut self, loss: f64, epoch: usize, iteration: usize) -> Result<(), String> {
        if !loss.is_finite() {
            return Err(format!(
                "the training loss became {loss} at epoch {epoch}, iteration {iteration} (lower the learning rate or check the data)"
            ));
        }
        if self.reference.is_none() {
            match self.first_epoch {
                None => self.first_epoch = Some(epoch),
                Some(first) if first != epoch && self.first.1 > 0 => {
                    self.reference = Some(self.first.0 / self.first.1 as f64);
                }
                _ => {}
            }
        }
        // Before the first epoch ends, its running mean is the yardstick.
        let yardstick = self
            .reference
            .or_else(|| (self.first.1 > 0).then(|| self.first.0 / self.first.1 as f64));
        if let Some(mean) = yardstick
            && mean > 0.0
            && loss > self.factor * mean
        {
            return Err(format!(
                "the training loss exploded to {loss:.3e} at epoch {epoch}, iteration {iteration}: more than train.divergence_factor = {:e} × the first epoch's mean loss {mean:.4} (lower the learning rate or check the data)",
                self.factor
            ));
        }
        if self.reference.is_none() {
            self.first.0 += loss;
            self.first.1 += 1;
        }
        Ok(())
    }
}

/// Checks a configured factor, naming the key.
pub fn validate_factor(key: &str, factor: f64) -> Result<(), String> {
    if factor.is_nan() || factor <= 1.0 {
        return Err(format!("{key} = {factor}: expected a number above 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_exploding_losses_stop_the_run() {
        let mut guard = DivergenceGuard::new(1e4);
        assert!(guard.check(2.0, 1, 1).is_ok());
        assert!(guard.check(2.2, 1, 2).is_ok());
        let err = guard.check(f64::NAN, 1, 3).unwrap_err();
        assert!(err.contains("NaN") && err.contains("iteration 3"), "{err}");
        assert!(guard.check(1e3, 1, 3).is_ok(), "large but within 1e4 × 2.1");
        // Epoch 2 compares with epoch 1's mean: (2 + 2.2 + 1000) / 3.
        let err = guard.check(3.4e6, 2, 1).unwrap_err();
        assert!(
            err.contains("exploded") && err.contains("divergence_factor"),
            "{err}"
        );
        assert!(guard.check(3.3e6, 2, 1).is_ok());
        let mut resumed = DivergenceGuard::new(10.0).with_reference(Some(1.0));
        assert!(resumed.check(11.0, 5, 1).is_err());
        assert!(validate_factor("train.divergence_factor", 0.5).is_err());
    }
}
