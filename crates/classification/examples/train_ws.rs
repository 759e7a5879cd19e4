//! Weight Standardization through the library API, no `vireo` binary: train the smoke preset on
//! ShapeWorld, then classify one of its validation images from a PNG file.
//!
//! `cargo run --release -p classification --example train_ws [-- --set train.epochs=1 …]`

use burn::backend::{Autodiff, Flex};
use classification::{DataConfig, WS};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::{Split, shapeworld::rgb_picture};

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = WS.config("smoke", &overrides)?;
    let DataConfig::Shapeworld { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld")
    };
    let device = Default::default();

    let session = Session::new("ws", "smoke", "runs");
    let outcome = WS.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // One validation image of the world the model was trained on, as a PNG file.
    let (scene, label) = world.classification_scene(Split::Val, 0);
    let png = outcome.run.file("example.png");
    rgb_picture(&scene.render(), [scene.size; 2]).save(&png)?;

    let weights = Weights::Run {
        file: outcome.run.final_weights()?,
        run: outcome.run,
        config,
    };
    let options = InferOptions {
        out: "predictions".into(),
        top_k: 3,
        gallery: None,
        backgrounds: None,
    };
    let predictions = WS.predict::<Flex>(weights, &[png], &options, &device)?;
    println!("true class: {}", world.class_names()[label]);
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    Ok(())
}
