//! A training step's monitored values (a loss and its parts, similarities, …) as burn-train
//! metrics: the step's output syncs to [`StepValues`] and each [`StepMetric`] averages one of them
//! over the epoch (one `metrics.csv` column each). Used by the tasks whose steps are not plain
//! classification (CO2's MoCo step, SAKE's distillation step).

use std::sync::Arc;

use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
    state::{FormatOptions, NumericMetricState},
};

use crate::LossValue;

/// One step's monitored values, the first being the loss the divergence guard watches.
#[derive(Clone, Debug)]
pub struct StepValues {
    pub values: Vec<f64>,
    /// Samples in the step (the average's weight).
    pub batch: usize,
}

impl Adaptor<LossValue> for StepValues {
    fn adapt(&self) -> LossValue {
        LossValue(self.values.first().copied().unwrap_or(f64::NAN))
    }
}

impl Adaptor<StepValues> for StepValues {
    fn adapt(&self) -> StepValues {
        self.clone()
    }
}

/// Value `index` of each step's [`StepValues`], averaged over the epoch.
#[derive(Clone)]
pub struct StepMetric {
    name: MetricName,
    index: usize,
    higher_is_better: bool,
    state: NumericMetricState,
}

impl StepMetric {
    pub fn new(name: &str, index: usize, higher_is_better: bool) -> Self {
        Self {
            name: Arc::new(name.to_string()),
            index,
            higher_is_better,
            state: NumericMetricState::new(),
        }
    }

    /// One metric per name, in the order of the step's values; none is better higher.
    pub fn each<const N: usize>(names: [&str; N]) -> [StepMetric; N] {
        std::array::from_fn(|index| StepMetric::new(names[index], index, false))
    }
}

impl Metric for StepMetric {
    type Input = StepValues;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &StepValues, _metadata: &MetricMetadata) -> SerializedEntry {
        let value = item.values.get(self.index).copied().unwrap_or(f64::NAN);
        self.state.update(
            value,
            item.batch,
            FormatOptions::new(self.name()).precision(4),
        )
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: self.higher_is_better,
        }
        .into()
    }
}

impl Numeric for StepMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
