//! CO2 on MoCo v2 through the library API, no `vireo` binary: pre-train the smoke preset on
//! ShapeWorld without labels, evaluate linearly, then classify one validation image from a PNG.
//!
//! `cargo run --release -p co2 --example train_co2 [-- --set train.epochs=1 …]`

use burn::backend::{Autodiff, Flex};
use co2::{CO2, experiment::config::Co2Data};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::Split;

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = CO2.config("smoke", &overrides)?;
    let Co2Data::Shapeworld { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld")
    };
    let device = Default::default();

    let session = Session::new("co2", "smoke", "runs");
    let outcome = CO2.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // One validation image of the world, as a PNG file, through the linear classifier.
    let (scene, label) = world.classification_scene(Split::Val, 0);
    let pixels: Vec<u8> = scene.render().iter().map(|v| (v * 255.0) as u8).collect();
    let size = scene.size as u32;
    let png = outcome.run.file("example.png");
    image::RgbImage::from_raw(size, size, pixels)
        .expect("a rendered scene holds H·W·3 values")
        .save(&png)?;
    let weights = Weights::Run {
        file: outcome.run.final_weights()?,
        run: outcome.run,
        config,
    };
    let options = InferOptions {
        out: "predictions".into(),
        top_k: 3,
    };
    let predictions = CO2.predict::<Flex>(weights, &[png], &options, &device)?;
    println!("true class: {}", world.class_names()[label]);
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    Ok(())
}
