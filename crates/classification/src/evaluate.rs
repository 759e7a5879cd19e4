//! `vireo eval ws|bcn`: top-1/top-5 and loss of a run's final model on its validation data.

use anyhow::Result;
use burn::{data::dataloader::DataLoader, tensor::backend::Backend};
use core_train::RunDir;
use datasets::EpochLoader;

use crate::{
    ClassificationConfig,
    train::{batcher_of, datasets_of},
};

/// One line: the file evaluated, the image count, top-1, top-5 and the mean loss.
pub fn evaluate<B: Backend>(
    config: ClassificationConfig,
    run: &RunDir,
    device: &B::Device,
) -> Result<String> {
    let (model, path) = run.load_final_model(config.model.init::<B>(device), device)?;
    let valid_set = datasets_of(&config)?.valid;
    let loader = EpochLoader::<B, _, _>::new(
        valid_set,
        batcher_of(&config),
        config.train.batch_size,
        device.clone(),
    )
    .workers(config.train.num_workers)
    .skip_failures(config.skip_corrupt());
    let status = loader.status();
    let (mut top1, mut top5, mut loss_sum, mut count) = (0usize, 0usize, 0.0f64, 0usize);
    for batch in loader.iter() {
        let n = batch.targets.dims()[0];
        let out = model.forward_classification(batch.images, batch.targets);
        let logits: Vec<f32> = out.output.into_data().iter::<f32>().collect();
        let targets: Vec<i64> = out.targets.into_data().iter::<i64>().collect();
        let classes = logits.len() / n;
        for (row, &target) in logits.chunks(classes).zip(&targets) {
            let target_logit = row[target as usize];
            // Rank = how many classes score strictly higher (ties broken in the target's favour).
            let rank = row.iter().filter(|&&v| v > target_logit).count();
            top1 += (rank < 1) as usize;
            top5 += (rank < 5) as usize;
        }
        loss_sum += out
            .loss
            .into_data()
            .iter::<f64>()
            .next()
            .unwrap_or(f64::NAN)
            * n as f64;
        count += n;
    }
    if let Some(failure) = status.failure() {
        anyhow::bail!("evaluation stopped: {failure}");
    }
    let skipped = status.skipped().len();
    if count == 0 {
        anyhow::bail!("no validation image could be evaluated ({skipped} skipped)");
    }
    Ok(format!(
        "{}: {} validation images, top-1 {:.2} %, top-5 {:.2} %, loss {:.4}",
        path.display(),
        count,
        100.0 * top1 as f64 / count as f64,
        100.0 * top5 as f64 / count as f64,
        loss_sum / count as f64
    ) + &if skipped > 0 {
        format!(" ({skipped} unreadable images left out)")
    } else {
        String::new()
    })
}
