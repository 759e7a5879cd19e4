//! ELASTIC through the library API, no `vireo` binary: train the smoke preset's elastic two-path
//! ResNeXt on ShapeWorld's scale task, then label one validation image from a PNG.
//!
//! `cargo run --release -p elastic --example train_elastic [-- --set train.epochs=1 …]`

use burn::backend::{Autodiff, Flex};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::{Split, shapeworld::rgb_picture};
use elastic::{ELASTIC, experiment::config::ElasticData};

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = ELASTIC.config("smoke", &overrides)?;
    let ElasticData::ShapeworldScale { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld's scale task")
    };
    let device = Default::default();

    let session = Session::new("elastic", "smoke", "runs");
    let outcome = ELASTIC.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // One validation image of the task, as a PNG file, through the trained model.
    let sample = world.scale_scene(Split::Val, 0);
    let png = outcome.run.file("example.png");
    rgb_picture(&sample.scene.render(), [sample.scene.size; 2]).save(&png)?;
    let weights = Weights::Run {
        file: outcome.run.final_weights()?,
        run: outcome.run,
        config,
    };
    let options = InferOptions {
        out: "predictions".into(),
        top_k: 4,
        gallery: None,
        backgrounds: None,
    };
    let predictions = ELASTIC.predict::<Flex>(weights, &[png], &options, &device)?;
    let names = world.class_names();
    let truth: Vec<&str> = (0..names.len())
        .filter(|&c| sample.targets[c] == 1.0)
        .map(|c| names[c])
        .collect();
    println!("labels in the image: {}", truth.join(", "));
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    Ok(())
}
