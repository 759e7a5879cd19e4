//! The timing method, the same on both sides (`bench/pytorch/bench.py` `warm_up`, `measure`):
//! warm-up by duration so that JIT compilation and autotuning stay out, device sync inside every
//! timed iteration, samples long enough to average out timer noise, median of the samples.

use std::time::Instant;

use anyhow::Result;

use super::cases::Prepared;

/// Runs the step for at least `seconds` (and at least twice); returns seconds per iteration.
pub fn warm_up(case: &mut Prepared, seconds: f64) -> Result<f64> {
    let start = Instant::now();
    let mut n = 0u32;
    while n < 2 || start.elapsed().as_secs_f64() < seconds {
        (case.step)()?;
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() / n as f64)
}

/// `reps` samples of seconds per iteration; each times enough iterations to last `min_rep_s`.
pub fn measure(
    case: &mut Prepared,
    reps: usize,
    min_rep_s: f64,
    per_iteration: f64,
) -> Result<Vec<f64>> {
    let inner = (min_rep_s / per_iteration.max(1e-9)).ceil().max(1.0) as u32;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        for _ in 0..inner {
            (case.step)()?;
        }
        samples.push(start.elapsed().as_secs_f64() / inner as f64);
    }
    Ok(samples)
}

/// Median, min and max of throughputs `items / seconds`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
}

pub fn summarize(items: usize, seconds: &[f64]) -> Option<Summary> {
    let mut rates: Vec<f64> = seconds.iter().map(|s| items as f64 / s).collect();
    if rates.is_empty() || rates.iter().any(|r| !r.is_finite()) {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    let median = if n % 2 == 1 {
        rates[n / 2]
    } else {
        0.5 * (rates[n / 2 - 1] + rates[n / 2])
    };
    Some(Summary {
        median,
        min: rates[0],
        max: rates[n - 1],
        samples: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_throughput_medians() {
        let s = summarize(8, &[0.5, 0.25, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.max, s.samples), (4.0, 32.0, 4));
        assert_eq!(s.median, 0.5 * (8.0 + 16.0));
        assert_eq!(summarize(8, &[0.5, 0.25, 1.0]).unwrap().median, 16.0);
        assert!(summarize(8, &[]).is_none());
    }

    #[test]
    fn measuring_times_whole_iterations() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let mut case = Prepared {
            items: 1,
            step: Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                Ok(())
            }),
        };
        let per = warm_up(&mut case, 0.01).unwrap();
        assert!(per >= 0.002);
        let samples = measure(&mut case, 3, 0.005, per).unwrap();
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|&s| s >= 0.002), "{samples:?}");
        assert!(count.load(Ordering::SeqCst) >= 2 + 3);
    }
}
