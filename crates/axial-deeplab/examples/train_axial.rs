//! Axial-DeepLab through the library API, no `vireo` binary: train the smoke preset (panoptic
//! segmentation of ShapeWorld scenes), then segment one validation scene saved as a PNG file.
//!
//! `cargo run --release -p axial-deeplab --example train_axial [-- --set train.epochs=1 …]`

use axial_deeplab::{AXIAL, experiment::config::PanopticData};
use burn::backend::{Autodiff, Flex};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::{Split, shapeworld::rgb_picture};

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = AXIAL.config("smoke", &overrides)?;
    let PanopticData::Shapeworld { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld")
    };
    let device = Default::default();

    let session = Session::new("axial", "smoke", "runs");
    let outcome = AXIAL.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // One validation scene of the world the model was trained on, as a PNG file.
    let scene = world.panoptic_scene(Split::Val, 0).scene;
    let png = outcome.run.file("example.png");
    rgb_picture(&scene.render(), [scene.size; 2]).save(&png)?;

    let weights = Weights::Run {
        file: outcome.run.final_weights()?,
        run: outcome.run,
        config,
    };
    let options = InferOptions {
        out: "predictions".into(),
        top_k: 5,
        gallery: None,
        backgrounds: None,
    };
    let predictions = AXIAL.predict::<Flex>(weights, &[png], &options, &device)?;
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    println!("overlay: {:?}", predictions[0].picture);
    Ok(())
}
