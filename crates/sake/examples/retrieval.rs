//! SAKE's retrieval evaluation through the library (`cargo run --release -p sake --example
//! retrieval`): queries and a gallery of features in a few classes (seeded, made up here), ranked
//! real-valued (−distance of L2-normalised features) and as 8-bit ITQ codes (Hamming), mAP@all and
//! P@100 side by side — what the paper's tables compare for its 64-d and 64-bit SAKE features.

use anyhow::Result;
use rand::{RngExt, SeedableRng};
use sake::{
    itq::{Itq, ItqConfig, PackedCodes, hamming_scores, matrix},
    retrieval::{MapReduction, euclidean_scores, evaluate, l2_normalize},
};

/// `per_class` noisy features around one random centre per class: `[n, dim]` and the labels.
fn features(classes: usize, per_class: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
    let centres: Vec<f32> = (0..classes * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for _ in 0..per_class {
            rows.extend((0..dim).map(|d| centres[c * dim + d] + rng.random_range(-0.9..0.9)));
            labels.push(c);
        }
    }
    (rows, labels)
}

fn main() -> Result<()> {
    let dim = 16;
    let (queries, query_labels) = features(5, 20, dim, 1);
    let (gallery, gallery_labels) = features(5, 60, dim, 2);
    let (q, g) = (l2_normalize(&queries, dim), l2_normalize(&gallery, dim));
    let real = evaluate(
        &query_labels,
        &gallery_labels,
        |i| euclidean_scores(&q[i * dim..(i + 1) * dim], &g, dim),
        None,
        100,
        MapReduction::Queries,
    )?;
    let config = ItqConfig {
        bits: 8,
        ..ItqConfig::default()
    };
    let itq = Itq::fit(&matrix(&q, dim), &config)?;
    let (query_codes, gallery_codes) = (
        PackedCodes::pack(&itq.encode(&matrix(&q, dim))),
        PackedCodes::pack(&itq.encode(&matrix(&g, dim))),
    );
    let binary = evaluate(
        &query_labels,
        &gallery_labels,
        |i| hamming_scores(query_codes.code(i), &gallery_codes),
        None,
        100,
        MapReduction::Queries,
    )?;
    println!(
        "{} queries, {} gallery items",
        real.queries,
        gallery_labels.len()
    );
    println!(
        "real-valued ({dim}-d): mAP@all {:.4}, P@100 {:.4}",
        real.map_all, real.precision
    );
    println!(
        "ITQ ({} bits):       mAP@all {:.4}, P@100 {:.4}",
        config.bits, binary.map_all, binary.precision
    );
    Ok(())
}
