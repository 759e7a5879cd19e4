//! The initialisation stage (`compnet.md` §2.9, §2.10, §2.5) from backbone outputs on the host:
//! the vMF dictionary from sampled feature vectors; per class, binary encodings, the pairwise
//! image distances, the hierarchical spectral clustering and the mixtures by ML/EM on the
//! likelihood maps `exp(κ·cos)` (CN-vMF), with CN-WACV's Bernoulli mixtures from the same
//! clusters' binary maps; and the occluder models of both models from background images.
//!
//! Maps are kernel-major `[K × H × W]` cosine maps (computed on the device against the
//! dictionary); every class's maps are centre zero-padded to the largest of them, and the classes'
//! mixtures to the common largest size. A class with fewer than M surviving clusters repeats its
//! clusters to fill M rows (the score takes the maximum over mixtures, so a repeat changes no
//! score; pitfall 13's explicit per-class count is [`ClassMixtures::clusters`]).

use rand::{SeedableRng, rngs::Xoshiro256PlusPlus, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::{
    binary::{BinaryMap, class_threshold, pairwise_distance},
    mixture_init::{em_step, first_m_step, log_likelihood, posterior},
    occluder::{BackgroundActivations, OccluderConfig, normalised_mean, occluder_models},
    spectral::{SpectralConfig, hierarchical_clusters},
    vmfmm::{Vmfmm, VmfmmConfig},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// The dictionary's clustering (K = `dictionary.components`; 512 in the paper).
    pub dictionary: VmfmmConfig,
    /// Training images per class the dictionary samples (1000).
    pub dictionary_images_per_class: usize,
    /// Feature positions sampled per image (20).
    pub positions_per_image: usize,
    /// Positions dropped at each border of a feature map before sampling (3 on VGG pool5 at 224).
    pub border: usize,
    /// Images per class the mixtures are clustered from (5000).
    pub mixture_images_per_class: usize,
    pub spectral: SpectralConfig,
    /// EM iterations (10); EM stops earlier when fewer than 1 % of the images change cluster.
    pub em_iterations: usize,
    /// The released EM overwrites the maps with the posteriors, so later iterations run on those.
    pub em_inplace_quirk: bool,
    /// The occluder models' `general` clustering and its released single-row bug.
    pub occluders: OccluderSettings,
    /// CN-WACV's probabilities are clamped to `[ε, 1 − ε]` (ML estimates can be 0 or 1).
    pub bernoulli_epsilon: f64,
    pub seed: u64,
    /// The released dictionary and mixtures instead of computing them (the pickles converted
    /// by `crates/compnet/tools/convert_init_pickles.py`); occluder models and CN-WACV's model
    /// are still made from the data.
    pub file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OccluderSettings {
    /// Components of the `general` occluders' vMF mixture (5).
    pub general_components: usize,
    pub official_single_general_row: bool,
}

impl Default for OccluderSettings {
    fn default() -> Self {
        Self {
            general_components: 5,
            official_single_general_row: false,
        }
    }
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            dictionary: VmfmmConfig::default(),
            dictionary_images_per_class: 1000,
            positions_per_image: 20,
            border: 3,
            mixture_images_per_class: 5000,
            spectral: SpectralConfig::default(),
            em_iterations: 10,
            em_inplace_quirk: false,
            occluders: OccluderSettings::default(),
            bernoulli_epsilon: 1e-3,
            seed: 0,
            file: None,
        }
    }
}

impl InitConfig {
    pub fn occluder_config(&self) -> OccluderConfig {
        let d = OccluderConfig::default();
        OccluderConfig {
            general: VmfmmConfig {
                components: self.occluders.general_components,
                kappa: self.dictionary.kappa,
                seed: self.seed,
                ..d.general
            },
            official_single_general_row: self.occluders.official_single_general_row,
        }
    }
}

/// A feature or cosine map `[C × H × W]` (channel-major) with its size.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub values: Vec<f64>,
    pub size: [usize; 2],
}

impl Map {
    pub fn channels(&self) -> usize {
        self.values.len() / (self.size[0] * self.size[1]).max(1)
    }

    /// The `C`-vector at position `(y, x)`.
    pub fn at(&self, y: usize, x: usize) -> Vec<f64> {
        let [h, w] = self.size;
        (0..self.channels())
            .map(|c| self.values[(c * h + y) * w + x])
            .collect()
    }

    /// Centre zero-padded (or cropped) to `[h, w]`, offsets `⌊(out − in)/2⌋` as `crop_or_pad_as`.
    pub fn centred(&self, [h, w]: [usize; 2]) -> Map {
        let [ih, iw] = self.size;
        let c = self.channels();
        let shift = |inner: usize, outer: usize| -> isize {
            if outer >= inner {
                ((outer - inner) / 2) as isize
            } else {
                -(((inner - outer) / 2) as isize)
            }
        };
        let (dy, dx) = (shift(ih, h), shift(iw, w));
        let mut values = vec![0.0; c * h * w];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let (sy, sx) = (y as isize - dy, x as isize - dx);
                    if sy >= 0 && sx >= 0 && (sy as usize) < ih && (sx as usize) < iw {
                        values[(ch * h + y) * w + x] =
                            self.values[(ch * ih + sy as usize) * iw + sx as usize];
                    }
                }
            }
        }
        Map {
            values,
            size: [h, w],
        }
    }
}

/// Up to `count` feature vectors of a map `[D × H × W]`, from positions at least `border` away
/// from each edge (all positions when the border leaves none), without repetition.
pub fn sample_positions(
    map: &Map,
    border: usize,
    count: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<Vec<f64>> {
    let [h, w] = map.size;
    let inner = |n: usize| {
        if n > 2 * border {
            border..n - border
        } else {
            0..n
        }
    };
    let mut positions: Vec<(usize, usize)> = inner(h)
        .flat_map(|y| inner(w).map(move |x| (y, x)))
        .collect();
    positions.shuffle(rng);
    positions
        .into_iter()
        .take(count)
        .map(|(y, x)| map.at(y, x))
        .collect()
}

/// The vMF dictionary `[K][D]` (unit rows) of feature maps `[D × H × W]` (§2.9 steps 1–2).
pub fn dictionary(features: &[Map], config: &InitConfig) -> Vec<Vec<f64>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
    let rows: Vec<Vec<f64>> = features
        .iter()
        .flat_map(|m| sample_positions(m, config.border, config.positions_per_image, &mut rng))
        .collect();
    let vmf = VmfmmConfig {
        seed: config.seed,
        ..config.dictionary.clone()
    };
    Vmfmm::fit(&rows, &vmf).mu
}

/// One class's mixtures.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMixtures {
    /// CN-vMF: `α_m` `[K × H × W]` per cluster (not yet repeated to M).
    pub vmf: Vec<Map>,
    /// CN-WACV: the probability that each kernel is on, `[K × H × W]` per cluster.
    pub bernoulli: Vec<Map>,
    /// Images per cluster after EM.
    pub clusters: Vec<usize>,
    /// The binary-encoding threshold on the cosine distance (§2.9 step 1).
    pub threshold: f64,
}

/// The mixtures of one class from its images' cosine maps `[K × H × W]` (§2.9 steps 1–6); the
/// Bernoulli means of the same clusters from binary maps at `bernoulli_threshold` (CN-WACV's one
/// threshold for every class, as a test image's class is unknown).
pub fn class_mixtures(
    cos: &[Map],
    kappa: f64,
    bernoulli_threshold: f64,
    config: &InitConfig,
) -> ClassMixtures {
    let cos: Vec<&Map> = cos.iter().take(config.mixture_images_per_class).collect();
    let n = cos.len();
    assert!(n > 0, "a class without images");
    let kernels = cos[0].channels();
    let distances: Vec<(Vec<f64>, [usize; 3])> = cos
        .iter()
        .map(|m| {
            (
                m.values.iter().map(|c| 1.0 - c).collect(),
                [kernels, m.size[0], m.size[1]],
            )
        })
        .collect();
    let threshold = class_threshold(&distances[..n.min(100)]);
    let binary: Vec<BinaryMap> = distances
        .iter()
        .map(|(d, shape)| BinaryMap::from_distances(d, *shape, threshold))
        .collect();
    let mut similarity = vec![1.0; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s = 1.0 - pairwise_distance(&binary[i], &binary[j]);
            similarity[i * n + j] = s;
            similarity[j * n + i] = s;
        }
    }
    let leaves = hierarchical_clusters(&similarity, n, &config.spectral);
    let size = [
        cos.iter().map(|m| m.size[0]).max().unwrap_or(1),
        cos.iter().map(|m| m.size[1]).max().unwrap_or(1),
    ];
    let mut maps: Vec<Vec<f64>> = cos
        .iter()
        .map(|m| {
            let likelihood = Map {
                values: m.values.iter().map(|c| (kappa * c).exp()).collect(),
                size: m.size,
            };
            likelihood.centred(size).values
        })
        .collect();
    let mut assignment = vec![usize::MAX; n];
    for (leaf, members) in leaves.iter().enumerate() {
        for &i in members {
            assignment[i] = leaf;
        }
    }
    let mut alphas: Vec<Vec<f64>> = leaves
        .iter()
        .map(|members| {
            let member_maps: Vec<Vec<f64>> = members.iter().map(|&i| maps[i].clone()).collect();
            first_m_step(&member_maps, kernels)
        })
        .collect();
    // EM runs over every image of the class, also those of dropped leaves.
    for _ in 0..config.em_iterations {
        if alphas.is_empty() {
            break;
        }
        let (next, updated) = em_step(&maps, &alphas, kernels);
        let changed = next.iter().zip(&assignment).filter(|(a, b)| a != b).count();
        if config.em_inplace_quirk {
            for (map, &m) in maps.iter_mut().zip(&next) {
                *map = posterior(map, &alphas[m], kernels);
            }
        }
        alphas = updated;
        assignment = next;
        if (changed as f64) < 0.01 * n as f64 {
            break;
        }
    }
    let clusters: Vec<usize> = (0..alphas.len())
        .map(|m| assignment.iter().filter(|&&a| a == m).count())
        .collect();
    let bernoulli_maps: Vec<BinaryMap> = distances
        .iter()
        .map(|(d, shape)| BinaryMap::from_distances(d, *shape, bernoulli_threshold))
        .collect();
    let bernoulli = (0..alphas.len())
        .map(|m| {
            let members: Vec<&BinaryMap> = bernoulli_maps
                .iter()
                .zip(&assignment)
                .filter(|(_, a)| **a == m)
                .map(|(b, _)| b)
                .collect();
            bernoulli_mean(&members, kernels, size)
        })
        .collect();
    ClassMixtures {
        vmf: alphas
            .into_iter()
            .map(|values| Map { values, size })
            .collect(),
        bernoulli,
        clusters,
        threshold,
    }
}

/// CN-WACV's mixtures for given vMF mixtures `alphas` (`[K × H × W]` each, at `size`; e.g. the
/// released ones): each image goes to the mixture under which its likelihood map `exp(κ·cos)`
/// scores best (the EM's E-step), and each mixture's Bernoulli means are those of its images'
/// binary maps at `bernoulli_threshold`; also the images per mixture.
pub fn bernoulli_for_mixtures(
    cos: &[Map],
    alphas: &[Map],
    kappa: f64,
    bernoulli_threshold: f64,
    size: [usize; 2],
) -> (Vec<Map>, Vec<usize>) {
    let kernels = alphas.first().map_or(0, Map::channels);
    let assignment: Vec<usize> = cos
        .iter()
        .map(|m| {
            let likelihood = Map {
                values: m.values.iter().map(|c| (kappa * c).exp()).collect(),
                size: m.size,
            }
            .centred(size);
            let scores: Vec<f64> = alphas
                .iter()
                .map(|a| log_likelihood(&likelihood.values, &a.values, kernels))
                .collect();
            crate::first_max(&scores).0
        })
        .collect();
    let binary: Vec<BinaryMap> = cos
        .iter()
        .map(|m| {
            let distances: Vec<f64> = m.values.iter().map(|c| 1.0 - c).collect();
            BinaryMap::from_distances(
                &distances,
                [kernels, m.size[0], m.size[1]],
                bernoulli_threshold,
            )
        })
        .collect();
    let means = (0..alphas.len())
        .map(|a| {
            let members: Vec<&BinaryMap> = binary
                .iter()
                .zip(&assignment)
                .filter(|(_, x)| **x == a)
                .map(|(b, _)| b)
                .collect();
            bernoulli_mean(&members, kernels, size)
        })
        .collect();
    let counts = (0..alphas.len())
        .map(|a| assignment.iter().filter(|&&x| x == a).count())
        .collect();
    (means, counts)
}

/// The fraction of maps with each kernel on at each position, centre-aligned to `size`; positions
/// outside every map are 0 (and marked invalid by [`valid_positions`]).
fn bernoulli_mean(maps: &[&BinaryMap], kernels: usize, [h, w]: [usize; 2]) -> Map {
    let mut values = vec![0.0; kernels * h * w];
    for m in maps {
        let aligned = m.aligned_to(h, w);
        for (v, on) in values.iter_mut().zip(&aligned.on) {
            *v += f64::from(u8::from(*on));
        }
    }
    Map {
        values: values
            .into_iter()
            .map(|count| count / maps.len().max(1) as f64)
            .collect(),
        size: [h, w],
    }
}

/// Positions of `[h, w]` some map of size `sizes` covers after centre alignment.
pub fn valid_positions(sizes: &[[usize; 2]], [h, w]: [usize; 2]) -> Vec<bool> {
    let mut valid = vec![false; h * w];
    for &[ih, iw] in sizes {
        let ones = Map {
            values: vec![1.0; ih * iw],
            size: [ih, iw],
        }
        .centred([h, w]);
        for (v, one) in valid.iter_mut().zip(&ones.values) {
            *v |= *one > 0.0;
        }
    }
    valid
}

/// `M` rows from a class's clusters: the first M, repeated cyclically when fewer survive.
pub fn fill_rows<T: Clone>(clusters: &[T], m: usize) -> Vec<T> {
    assert!(!clusters.is_empty(), "a class without clusters");
    (0..m)
        .map(|i| clusters[i % clusters.len()].clone())
        .collect()
}

/// The vMF activation vectors `exp(κ·cos)·[cos > 0]` at every position of cosine maps.
pub fn activation_vectors(cos: &[Map], kappa: f64, threshold: f64) -> Vec<Vec<f64>> {
    cos.iter()
        .flat_map(|m| {
            let [h, w] = m.size;
            (0..h * w).map(move |p| {
                (0..m.channels())
                    .map(|k| {
                        let c = m.values[k * h * w + p];
                        if c > threshold {
                            (kappa * c).exp()
                        } else {
                            0.0
                        }
                    })
                    .collect::<Vec<f64>>()
            })
        })
        .collect()
}

/// Background cosine maps by occluder type.
#[derive(Clone, Debug, Default)]
pub struct BackgroundMaps {
    pub white: Vec<Map>,
    pub noise: Vec<Map>,
    pub general: Vec<Map>,
}

/// CN-vMF's occluder models `[N][K]` (raw; §2.5).
pub fn vmf_occluders(
    backgrounds: &BackgroundMaps,
    kappa: f64,
    threshold: f64,
    config: &InitConfig,
) -> Vec<Vec<f64>> {
    let activations = BackgroundActivations {
        white: activation_vectors(&backgrounds.white, kappa, threshold),
        noise: activation_vectors(&backgrounds.noise, kappa, threshold),
        general: activation_vectors(&backgrounds.general, kappa, threshold),
    };
    occluder_models(&activations, &config.occluder_config())
}

/// CN-WACV's occluder model `[K]` (§2.10): the mean of the per-position normalised binary
/// activations `[cos > 1 − t]` over every background image; uniform if none fires.
pub fn bernoulli_occluder(backgrounds: &BackgroundMaps, distance_threshold: f64) -> Vec<f64> {
    let all: Vec<&Map> = backgrounds
        .white
        .iter()
        .chain(&backgrounds.noise)
        .chain(&backgrounds.general)
        .collect();
    let vectors: Vec<Vec<f64>> = all
        .iter()
        .flat_map(|m| {
            let [h, w] = m.size;
            (0..h * w).map(move |p| {
                (0..m.channels())
                    .map(|k| {
                        f64::from(u8::from(1.0 - m.values[k * h * w + p] < distance_threshold))
                    })
                    .collect::<Vec<f64>>()
            })
        })
        .collect();
    let kernels = all.first().map_or(0, |m| m.channels());
    normalised_mean(&vectors).unwrap_or_else(|| vec![1.0 / kernels.max(1) as f64; kernels])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centring_pads_and_crops_like_crop_or_pad_as() {
        let m = Map {
            values: (0..6).map(f64::from).collect(),
            size: [2, 3],
        };
        let padded = m.centred([4, 5]);
        assert_eq!(padded.values[6..9], [0.0, 1.0, 2.0]);
        assert_eq!(padded.values[11..14], [3.0, 4.0, 5.0]);
        assert_eq!(padded.centred([2, 3]), m);
        assert_eq!(
            valid_positions(&[[2, 3]], [4, 5])
                .iter()
                .filter(|v| **v)
                .count(),
            6
        );
    }

    #[test]
    fn sampling_respects_the_border_and_does_not_repeat() {
        let m = Map {
            values: (0..49).map(f64::from).collect(),
            size: [7, 7],
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let rows = sample_positions(&m, 3, 20, &mut rng);
        assert_eq!(
            rows,
            vec![vec![24.0]],
            "with H = 7 only the centre survives"
        );
        let rows = sample_positions(&m, 1, 100, &mut rng);
        assert_eq!(rows.len(), 25);
        let small = Map {
            values: vec![1.0; 4],
            size: [2, 2],
        };
        assert_eq!(sample_positions(&small, 3, 20, &mut rng).len(), 4);
    }

    /// Two kinds of images (a kernel on left or right): two clusters whose mixtures put their
    /// mass where their images fire, and Bernoulli means of 1 there.
    #[test]
    fn class_mixtures_find_the_two_kinds() {
        let make = |left: bool, jitter: f64| {
            // K = 2 kernels, 1 × 4 positions: kernel 0 fires at the left or the right end
            // (beyond each other's 3 × 3 neighbourhood).
            let (a, b) = if left { (0.95, 0.1) } else { (0.1, 0.95) };
            Map {
                values: vec![a - jitter, 0.1, 0.1, b + jitter, 0.2, 0.2, 0.2, 0.2],
                size: [1, 4],
            }
        };
        let maps: Vec<Map> = (0..20)
            .map(|i| make(i % 2 == 0, 0.001 * i as f64))
            .collect();
        let config = InitConfig {
            spectral: SpectralConfig {
                levels: 1,
                ..SpectralConfig::default()
            },
            ..InitConfig::default()
        };
        let mixtures = class_mixtures(&maps, 30.0, 0.45, &config);
        assert_eq!(mixtures.clusters, vec![10, 10]);
        for (alpha, bern) in mixtures.vmf.iter().zip(&mixtures.bernoulli) {
            let left = alpha.values[0] > alpha.values[3];
            assert!(alpha.values[0].max(alpha.values[3]) > 0.9, "{alpha:?}");
            let (on, off) = if left { (0, 3) } else { (3, 0) };
            assert_eq!((bern.values[on], bern.values[off]), (1.0, 0.0), "{bern:?}");
        }
        assert_eq!(fill_rows(&[1, 2], 4), vec![1, 2, 1, 2]);
    }
}
