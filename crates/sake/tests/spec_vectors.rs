//! `sake.md` §8.3 (AP and precision), §8.6 (ITQ properties) and §8.7 (the ITQ Procrustes step),
//! in f64.

use nalgebra::DMatrix;
use sake::{
    itq::{Itq, ItqConfig, PackedCodes, hamming_scores, procrustes, quantisation_loss, sign},
    retrieval::{
        MapReduction, average_precision, euclidean_scores, evaluate, l2_normalize, precision_at,
        ranking,
    },
};

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
}

#[test]
fn ap_and_precision_of_section_8_3() {
    // Gallery labels [0, 1, 0, 1, 0, 2] in descending score, query class 0.
    let labels = [0, 1, 0, 1, 0, 2];
    let relevant: Vec<bool> = labels.iter().map(|&l| l == 0).collect();
    close(average_precision(&relevant, 3, None), 0.7555555556, 1e-9);
    close(average_precision(&relevant, 3, Some(3)), 0.5555555556, 1e-9);
    close(precision_at(&relevant, 3), 0.6666666667, 1e-9);
    close(precision_at(&relevant, 100), 0.5, 1e-9);
    // The same through `evaluate` with strictly descending scores.
    let scores = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    let result = evaluate(
        &[0],
        &labels,
        |_| scores.to_vec(),
        Some(3),
        100,
        MapReduction::Queries,
    )
    .unwrap();
    close(result.map_all, 0.7555555556, 1e-9);
    close(result.map_top.unwrap(), 0.5555555556, 1e-9);
    close(result.precision, 0.5, 1e-9);
    // The interpolated precision–recall curve: precisions 1, ½, ⅔, ½, ⅗, ½ at recalls ⅓, ⅓, ⅔,
    // ⅔, 1, 1 — the best precision at recall ≥ r is 1 up to ⅓, ⅔ up to ⅔, then ⅗.
    let pr = &result.interpolated_pr;
    assert_eq!(pr.len(), 21);
    for (i, want) in [
        (0, 1.0),
        (6, 1.0),
        (7, 2.0 / 3.0),
        (13, 2.0 / 3.0),
        (14, 0.6),
        (20, 0.6),
    ] {
        close(pr[i].0, i as f64 / 20.0, 1e-12);
        close(pr[i].1, want, 1e-9);
    }
}

#[test]
fn scores_are_minus_the_distance_of_normalised_features() {
    let query = l2_normalize(&[3.0, 4.0], 2);
    let gallery = l2_normalize(&[1.0, 0.0, 0.0, 2.0, -1.0, -1.0], 2);
    let scores = euclidean_scores(&query, &gallery, 2);
    for (s, expected) in scores
        .iter()
        .zip([-0.894427191, -0.632455532, -1.9949684176])
    {
        close(*s, expected, 1e-6);
    }
}

#[test]
fn ties_rank_by_gallery_index_and_a_query_without_positives_is_an_error() {
    assert_eq!(ranking(&[1.0, 2.0, 1.0, 2.0]), [1, 3, 0, 2]);
    let error = |queries: &[usize]| {
        let scores = |_| vec![0.0, 0.0];
        evaluate(queries, &[0, 1], scores, None, 100, MapReduction::Queries)
            .unwrap_err()
            .to_string()
    };
    let err = error(&[5]);
    assert!(err.contains("no positive"), "{err}");
    // Several queries without one: the first is named, whatever the threads did.
    let err = error(&[0, 5, 6]);
    assert!(err.contains("query 1 (class 5)"), "{err}");
    // Per-class reduction: class 0's queries average first.
    let gallery = [0, 1];
    let scores = |q: usize| match q {
        0 | 1 => vec![1.0, 0.0],
        _ => vec![1.0, 0.0],
    };
    let by_query = evaluate(&[0, 0, 1], &gallery, scores, None, 1, MapReduction::Queries).unwrap();
    let by_class = evaluate(&[0, 0, 1], &gallery, scores, None, 1, MapReduction::Classes).unwrap();
    // APs 1, 1, 0.5: queries (1 + 1 + 0.5)/3; classes (1 + 0.5)/2.
    close(by_query.map_all, 2.5 / 3.0, 1e-12);
    close(by_class.map_all, 0.75, 1e-12);
}

#[test]
fn ranking_and_packed_hamming_scores_match_their_plain_definitions() {
    // Ties, signed zeros, infinities, a NaN: total_cmp's order, descending, ties by index.
    let scores = [
        0.5,
        -0.0,
        0.0,
        f64::NEG_INFINITY,
        -2.5,
        0.5,
        f64::INFINITY,
        f64::NAN,
        -2.5,
        1e-300,
        -1e-300,
    ];
    let mut expected: Vec<usize> = (0..scores.len()).collect();
    expected.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    assert_eq!(ranking(&scores), expected);
    // 130-bit codes: three words, the last one partial.
    let codes: Vec<Vec<bool>> = (0..7u64)
        .map(|c| {
            (0..130u64)
                .map(|i| (i * 31 + c * 17 + i * i * c) % 5 < 2)
                .collect()
        })
        .collect();
    let packed = PackedCodes::pack(&codes);
    assert_eq!(packed.len(), 7);
    for (q, query) in codes.iter().enumerate() {
        let scores = hamming_scores(packed.code(q), &packed);
        for (code, score) in codes.iter().zip(&scores) {
            let differing = query.iter().zip(code).filter(|(a, b)| a != b).count();
            assert_eq!(-*score, differing as f64);
        }
    }
}

fn v_8_7() -> DMatrix<f64> {
    DMatrix::from_row_slice(
        6,
        3,
        &[
            1.0, 2.0, 0.5, 2.0, -1.0, 1.0, -1.0, -1.0, 2.0, -2.0, 0.5, -1.0, 0.5, 1.5, -2.0, -0.5,
            -2.0, -0.5,
        ],
    )
}

#[test]
fn the_procrustes_step_of_section_8_7() {
    let v = v_8_7();
    let identity = DMatrix::<f64>::identity(3, 3);
    let b = sign(&v);
    assert_eq!(
        b,
        DMatrix::from_row_slice(
            6,
            3,
            &[
                1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0,
                -1.0, -1.0, -1.0
            ]
        )
    );
    close(quantisation_loss(&b, &v, &identity), 7.5, 1e-12);
    let r = procrustes(&b, &v, false);
    let expected = DMatrix::from_row_slice(
        3,
        3,
        &[
            0.9253081339,
            -0.3242727098,
            0.1966012893,
            0.2656042124,
            0.9242254381,
            0.2743387357,
            -0.2706644779,
            -0.201629733,
            0.9413215132,
        ],
    );
    assert!((&r - &expected).abs().max() < 1e-9, "{r}");
    close(quantisation_loss(&b, &v, &r), 3.1445537870, 1e-9);
    let codes: Vec<u8> = (&v * &r).iter().map(|&z| (z >= 0.0) as u8).collect();
    // Column-major from nalgebra: compare row by row.
    let rows: Vec<Vec<u8>> = (0..6)
        .map(|i| (0..3).map(|j| codes[j * 6 + i]).collect())
        .collect();
    assert_eq!(
        rows,
        [
            [1, 1, 1],
            [1, 0, 1],
            [0, 0, 1],
            [0, 1, 0],
            [1, 1, 0],
            [0, 0, 0]
        ]
    );
    // The NumPy port's transposed update. Unlike the correct one it depends on the SVD's sign
    // convention: with NumPy's LAPACK signs it gives the spec's 77.2362900021, with nalgebra's
    // 37.47; either way a rotation that makes the codes worse than no rotation at all (7.5).
    let slip = procrustes(&b, &v, true);
    assert!((slip.transpose() * &slip - &identity).abs().max() < 1e-9);
    let slipped = quantisation_loss(&b, &v, &slip);
    assert!(
        slipped > 7.5 && (slipped - 3.1445537870).abs() > 1.0,
        "{slipped}"
    );
}

#[test]
fn itq_keeps_the_rotation_orthogonal_and_the_loss_non_increasing() {
    // 40 points in 6-d with structure, 4 bits.
    let x = DMatrix::from_fn(40, 6, |i, j| {
        ((i * 7 + j * 13) % 11) as f64 - 5.0 + if i % 2 == 0 { 3.0 * j as f64 } else { 0.0 }
    });
    let config = ItqConfig {
        bits: 4,
        n_iter: 30,
        seed: 3,
        ..ItqConfig::default()
    };
    let itq = Itq::fit(&x, &config).unwrap();
    let r = &itq.rotation;
    assert!(
        (r.transpose() * r - DMatrix::<f64>::identity(4, 4))
            .abs()
            .max()
            < 1e-6
    );
    for pair in itq.losses.windows(2) {
        assert!(pair[1] <= pair[0] + 1e-9, "{:?}", itq.losses);
    }
    let codes = itq.encode(&x);
    assert_eq!((codes.len(), codes[0].len()), (40, 4));
    // A code is at Hamming distance 0 from itself.
    let packed = PackedCodes::pack(&codes);
    let scores = hamming_scores(packed.code(0), &packed);
    assert_eq!(scores[0], 0.0);
    assert!(scores.iter().all(|&s| s <= 0.0));

    let err = Itq::fit(&x, &ItqConfig { bits: 7, ..config }).unwrap_err();
    assert!(err.to_string().contains("itq.bits = 7"), "{err}");
}
