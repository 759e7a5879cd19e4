//! CompNet through the library API, no `vireo` binary: train the smoke preset (the DCNN, the
//! initialisation, CN-vMF end to end), then classify an occluded ShapeWorld image written as a PNG
//! and draw where the model thinks the occluder is.
//!
//! `cargo run --release -p compnet --example train_compnet [-- --set train.epochs=1 …]`

use burn::backend::{Autodiff, Flex};
use compnet::{COMPNET, experiment::config::CompNetData};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::shapeworld::{OcclusionLevel, Split, rgb_picture};

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = COMPNET.config("smoke", &overrides)?;
    let CompNetData::Shapeworld { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld")
    };
    let device = Default::default();

    let session = Session::new("compnet", "smoke", "runs");
    let outcome = COMPNET.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // A test image with 40–60 % of its object hidden, as a file.
    let sample = world.occlusion_scene(Split::Test, 10_000, OcclusionLevel::L2);
    let png = outcome.run.file("example-occluded.png");
    rgb_picture(&sample.scene.render(), [sample.scene.size; 2]).save(&png)?;
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
    let predictions = COMPNET.predict::<Flex>(weights, &[png], &options, &device)?;
    println!(
        "the image shows a {} ({:.0} % hidden)",
        world.class_names()[sample.label],
        100.0 * sample.occluded_fraction
    );
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    Ok(())
}
