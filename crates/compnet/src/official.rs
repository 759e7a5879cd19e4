//! The released checkpoints (`compnet.md` §5): `best.pth` = `{'state_dict', 'val_acc', 'epoch'}`
//! (`val_acc` a NumPy scalar) with the VGG features `backbone.{0,2,…,28}`, the vMF kernels
//! `conv1o1.weight` and the mixtures `mix_model`, stored a second time as
//! `pointwiseinference.mix_model` (one tensor in the released model: both entries must agree, one
//! is kept). The occluder models are not in the file: they are rebuilt from background images
//! ([`background_images_from_folder`], [`background_maps`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::{
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};
use burn_store::{ModuleStore, PytorchStore};
use core_nets::{
    ImportReport,
    vgg::{VGG16_FEATURE_INDICES, Vgg16Features, VggConfig, VggCut},
};

use crate::{
    features::{Image, cosine_maps},
    head::{CompositionalHead, HeadConfig},
    init::BackgroundMaps,
    vmf::VmfKernels,
};

/// The released model's entries, named as in the file.
#[derive(Module, Debug)]
pub struct ReleasedCompNet<B: Backend> {
    pub backbone: Vgg16Features<B>,
    pub conv1o1: VmfKernels<B>,
    pub mix_model: Param<Tensor<B, 4>>,
    pub pointwiseinference: TiedMixtures<B>,
}

/// `pointwiseinference.mix_model`: the same tensor as `mix_model` in the released model.
#[derive(Module, Debug)]
pub struct TiedMixtures<B: Backend> {
    pub mix_model: Param<Tensor<B, 4>>,
}

/// The shape of entry `key` of a (possibly `state_dict`-wrapped) checkpoint, and its values.
fn entry(path: &Path, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let mut store = PytorchStore::from_file(path);
    let keys = store.keys().map_err(|e| {
        anyhow::anyhow!("{}: not a readable PyTorch checkpoint: {e}", path.display())
    })?;
    let name = [format!("state_dict.{key}"), key.to_string()]
        .into_iter()
        .find(|k| keys.contains(k))
        .with_context(|| {
            format!(
                "{}: no `{key}` entry — not a CompNet checkpoint (expected mix_model, conv1o1.weight, backbone.*)",
                path.display()
            )
        })?;
    let snapshot = store
        .get_snapshot(&name)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .with_context(|| format!("{}: `{name}` vanished", path.display()))?;
    let data = snapshot
        .to_data()
        .map_err(|e| anyhow::anyhow!("{}: reading `{name}`: {e:?}", path.display()))?
        .convert::<f32>();
    Ok((
        snapshot.shape.iter().copied().collect::<Vec<usize>>(),
        data.iter::<f32>().collect(),
    ))
}

/// The globals a training script's checkpoint pickles for a NumPy scalar beside the state_dict
/// (the released `val_acc`: `numpy.core.multiarray.scalar(numpy.dtype('float64'),
/// _codecs.encode(…))`), which burn-store's pickle reader refuses, as protocol-2 `GLOBAL`
/// operands.
const NUMPY_SCALAR_GLOBALS: [&[u8]; 4] = [
    b"cnumpy.core.multiarray\nscalar\n",
    b"cnumpy._core.multiarray\nscalar\n",
    b"cnumpy\ndtype\n",
    b"c_codecs\nencode\n",
];

/// What each becomes: a call the reader evaluates to an empty dict, so the scalar is skipped.
const SKIPPED: &[u8] = b"ccollections\nOrderedDict\n";

/// A copy of the checkpoint to read instead, removed when dropped.
struct Readable(PathBuf);

impl Drop for Readable {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn replace_all(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// A temporary copy of the (zip) checkpoint at `path` whose pickle has its NumPy scalars
/// skipped, or `None` when it has none (§5: a reader must accept or skip NumPy scalar globals
/// rather than refuse the file). The tensors' storages are copied unchanged.
fn without_numpy_scalars(path: &Path) -> Result<Option<Readable>> {
    use std::io::{Read, Write};
    let Ok(mut archive) = std::fs::File::open(path)
        .map_err(anyhow::Error::from)
        .and_then(|f| zip::ZipArchive::new(f).map_err(anyhow::Error::from))
    else {
        return Ok(None); // not a zip checkpoint: left to the reader, which names the problem
    };
    let mut entries = Vec::with_capacity(archive.len());
    let mut patched = false;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data)?;
        let name = entry.name().to_string();
        if name.ends_with("data.pkl") {
            for global in NUMPY_SCALAR_GLOBALS {
                let replaced = replace_all(&data, global, SKIPPED);
                patched |= replaced != data;
                data = replaced;
            }
        }
        entries.push((name, data));
    }
    if !patched {
        return Ok(None);
    }
    static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let copy = Readable(std::env::temp_dir().join(format!(
        "vireo-compnet-{}-{}.pth",
        std::process::id(),
        COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )));
    let mut writer = zip::ZipWriter::new(
        std::fs::File::create(&copy.0).with_context(|| format!("creating {}", copy.0.display()))?,
    );
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        writer.start_file(name, stored)?;
        writer.write_all(&data)?;
    }
    writer.finish()?;
    Ok(Some(copy))
}

/// A released `best.pth` into the backbone (cut as `vgg` says) and the head (`config`, its
/// `mixtures_per_class` dividing the file's mixture rows).
pub fn load_best_checkpoint<B: Backend>(
    path: &Path,
    vgg: &VggConfig,
    config: HeadConfig,
    device: &B::Device,
) -> Result<(Vgg16Features<B>, CompositionalHead<B>, ImportReport)> {
    if !path.is_file() {
        bail!("{}: no such file (a CompNet best.pth)", path.display());
    }
    let readable = without_numpy_scalars(path)
        .with_context(|| format!("{}: reading the checkpoint's archive", path.display()))?;
    let path = readable.as_ref().map_or(path, |r| r.0.as_path());
    let (mix_shape, mix) = entry(path, "mix_model")?;
    let (kernel_shape, _) = entry(path, "conv1o1.weight")?;
    if let Ok((tied_shape, tied)) = entry(path, "pointwiseinference.mix_model")
        && (tied_shape != mix_shape || tied != mix)
    {
        bail!(
            "{}: `mix_model` and `pointwiseinference.mix_model` differ — they are one tensor in the released model",
            path.display()
        );
    }
    let [rows, k, h, w]: [usize; 4] = mix_shape.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: mix_model has shape {mix_shape:?}, expected [C·M, K, H, W]",
            path.display()
        )
    })?;
    if rows % config.mixtures_per_class.max(1) != 0 {
        bail!(
            "{}: {rows} mixture rows are not a multiple of head.mixtures_per_class = {}",
            path.display(),
            config.mixtures_per_class
        );
    }
    let full = VggConfig {
        cut: VggCut::Pool5,
        ..vgg.clone()
    };
    let d = full.out_channels();
    if kernel_shape != [k, d, 1, 1] {
        bail!(
            "{}: conv1o1.weight has shape {kernel_shape:?}; expected [{k}, {d}, 1, 1] (K from mix_model, D of the VGG features with widths / {})",
            path.display(),
            vgg.width_divisor.max(1)
        );
    }
    let zeros = |shape: [usize; 4]| Param::from_tensor(Tensor::zeros(shape, device));
    let template = ReleasedCompNet {
        backbone: full.init(device),
        conv1o1: VmfKernels {
            weight: zeros([k, d, 1, 1]),
        },
        mix_model: zeros([rows, k, h, w]),
        pointwiseinference: TiedMixtures {
            mix_model: zeros([rows, k, h, w]),
        },
    };
    let remaps: Vec<(String, String)> = VGG16_FEATURE_INDICES
        .iter()
        .enumerate()
        .map(|(j, i)| (format!(r"^backbone\.{i}\."), format!("backbone.convs.{j}.")))
        .collect();
    let remaps: Vec<(&str, &str)> = remaps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (released, report) = core_nets::load_pytorch_checkpoint_with(
        template,
        path,
        &format!(
            "CompNet (VGG-16 pool5 / {}, K = {k}, {rows} mixtures of {h} × {w})",
            vgg.width_divisor.max(1)
        ),
        &remaps,
    )?;
    let head = CompositionalHead {
        conv1o1: released.conv1o1,
        mix_model: released.mix_model,
        config,
    };
    Ok((released.backbone.cut(vgg.cut), head, report))
}

/// Background images by occluder type (§2.5), each at its own size.
#[derive(Clone, Debug, Default)]
pub struct BackgroundImages {
    pub white: Vec<Image>,
    pub noise: Vec<Image>,
    pub general: Vec<Image>,
}

/// CN-vMF's occluder models (§2.5) from background cosine maps, as a `[N, K]` tensor; an error
/// when no background position activates any kernel (no model can be made).
pub fn occluder_models_tensor<B: Backend>(
    maps: &BackgroundMaps,
    head: &HeadConfig,
    init: &crate::init::InitConfig,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let rows = crate::init::vmf_occluders(maps, head.kappa, head.threshold, init);
    if rows.is_empty() {
        bail!(
            "no background position activates any vMF kernel (cos > {}): no occluder model can be built",
            head.threshold
        );
    }
    Ok(crate::model::occluder_tensor(&rows, device))
}

/// The released `background_images/` layout: `*_white*` and `*_noise*` files are those types,
/// every other PNG/JPEG is `general`; sorted by name (the released code does not sort: its order
/// is the file system's). Images are read at their own resolution, as released.
pub fn background_images_from_folder(dir: &Path) -> Result<BackgroundImages> {
    let files = datasets::image_folder::image_files(dir, "background images:")
        .map_err(anyhow::Error::msg)?;
    let mut images = BackgroundImages::default();
    for path in files {
        let image = image::open(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .to_rgb8();
        let (w, h) = image.dimensions();
        let pixels = image.as_raw().iter().map(|&b| b as f32 / 255.0).collect();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let kind = if name.contains("_white") {
            &mut images.white
        } else if name.contains("_noise") {
            &mut images.noise
        } else {
            &mut images.general
        };
        kind.push((pixels, [h as usize, w as usize]));
    }
    Ok(images)
}

/// The cosine maps of background images by type under `backbone` and `kernels`.
pub fn background_maps<B: Backend>(
    images: &BackgroundImages,
    backbone: &crate::backbone::Backbone<B>,
    kernels: &VmfKernels<B>,
    normalization: &datasets::Normalization,
    batch: usize,
    device: &B::Device,
) -> BackgroundMaps {
    let maps = |set: &[Image]| {
        let refs: Vec<(&[f32], [usize; 2])> = set.iter().map(|(p, s)| (p.as_slice(), *s)).collect();
        cosine_maps(&refs, backbone, kernels, normalization, batch, device)
    };
    BackgroundMaps {
        white: maps(&images.white),
        noise: maps(&images.noise),
        general: maps(&images.general),
    }
}

/// The released initialisation (`init.file`): the vMF dictionary and the mixtures, as
/// `crates/compnet/tools/convert_init_pickles.py` converts the released pickles.
#[derive(Clone, Debug)]
pub struct ReleasedInit {
    /// `[K][D]`
    pub dictionary: Vec<Vec<f64>>,
    /// `[C·M, K, Hm, Wm]`, row-major.
    pub mixtures: Vec<f32>,
    pub size: [usize; 2],
    /// Surviving mixtures per class (0: the file has none for the class; its rows stay empty).
    pub clusters: Vec<usize>,
}

/// One class's mixtures in a released initialisation: `(M_c, [H, W], values (M_c, K, H, W))`.
type ClassFile = (usize, [usize; 2], Vec<f32>);

/// The released initialisation file for `classes` (§2.9 "Loading", `helpers.getCompositionModel`):
/// each class's `[M_c, K, W, H]` transposed to `(K, H, W)`; the common size is the per-axis
/// maximum over classes, plus 1 where even, then −20 (H) and −40 (W) for pool4; each class
/// padded with zeros at top/left offset `⌈(max − h)/2⌉` for pool5 and `⌊·⌋` otherwise (cropped
/// from `⌊(h − max)/2⌋` where larger); a class with fewer than `m` mixtures repeats them.
pub fn load_released_init(
    path: &Path,
    classes: &[String],
    cut: VggCut,
    m: usize,
) -> Result<ReleasedInit> {
    if !path.is_file() {
        bail!(
            "init.file = {}: no such file (the released pickles converted by crates/compnet/tools/convert_init_pickles.py)",
            path.display()
        );
    }
    let read = |key: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let mut store = burn_store::SafetensorsStore::from_file(path);
        let snapshot = store
            .get_snapshot(key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let Some(snapshot) = snapshot else {
            return Ok(None);
        };
        let data = snapshot
            .to_data()
            .map_err(|e| anyhow::anyhow!("{} '{key}': {e:?}", path.display()))?
            .convert::<f32>();
        Ok(Some((
            snapshot.shape.iter().copied().collect(),
            data.iter::<f32>().collect(),
        )))
    };
    let (dict_shape, dict) = read("dictionary")?.with_context(|| {
        format!(
            "{}: no `dictionary` tensor (not a converted CompNet initialisation)",
            path.display()
        )
    })?;
    let [k, d]: [usize; 2] = dict_shape.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: dictionary has shape {dict_shape:?}, expected [K, D]",
            path.display()
        )
    })?;
    let dictionary: Vec<Vec<f64>> = dict
        .chunks(d)
        .map(|row| row.iter().map(|&v| f64::from(v)).collect())
        .collect();
    // Per class: (M_c, K, H, W) after the transpose.
    let mut per_class: Vec<Option<ClassFile>> = Vec::new();
    for class in classes {
        let Some((shape, values)) = read(&format!("mixtures.{class}"))? else {
            per_class.push(None);
            continue;
        };
        let [mc, kc, wd, ht]: [usize; 4] = shape.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "{}: mixtures.{class} has shape {shape:?}, expected [M, K, W, H]",
                path.display()
            )
        })?;
        if kc != k {
            bail!(
                "{}: mixtures.{class} has {kc} kernels, the dictionary {k}",
                path.display()
            );
        }
        let mut transposed = vec![0.0f32; values.len()];
        for r in 0..mc * kc {
            for x in 0..wd {
                for y in 0..ht {
                    transposed[(r * ht + y) * wd + x] = values[(r * wd + x) * ht + y];
                }
            }
        }
        per_class.push(Some((mc, [ht, wd], transposed)));
    }
    let present: Vec<&ClassFile> = per_class.iter().flatten().collect();
    if present.is_empty() {
        bail!(
            "{}: no `mixtures.{{class}}` tensor for any of the classes {classes:?}",
            path.display()
        );
    }
    let odd = |v: usize| if v.is_multiple_of(2) { v + 1 } else { v };
    let mut size = [0, 1].map(|a| odd(present.iter().map(|c| c.1[a]).max().unwrap_or(1)));
    if cut == VggCut::Pool4 {
        size = [
            size[0].saturating_sub(20).max(1),
            size[1].saturating_sub(40).max(1),
        ];
    }
    let [hm, wm] = size;
    let offset = |target: usize, inner: usize| -> isize {
        if target >= inner {
            let diff = target - inner;
            (if cut == VggCut::Pool5 {
                diff.div_ceil(2)
            } else {
                diff / 2
            }) as isize
        } else {
            -(((inner - target) / 2) as isize)
        }
    };
    let mut mixtures = Vec::with_capacity(classes.len() * m * k * hm * wm);
    let mut clusters = Vec::new();
    for class in &per_class {
        let Some((mc, [h, w], values)) = class else {
            mixtures.extend(std::iter::repeat_n(0.0f32, m * k * hm * wm));
            clusters.push(0);
            continue;
        };
        clusters.push(*mc);
        let (dy, dx) = (offset(hm, *h), offset(wm, *w));
        for row in 0..m {
            let source = row % mc;
            for kk in 0..k {
                for y in 0..hm {
                    for x in 0..wm {
                        let (sy, sx) = (y as isize - dy, x as isize - dx);
                        let inside = sy >= 0 && sx >= 0 && (sy as usize) < *h && (sx as usize) < *w;
                        mixtures.push(if inside {
                            values[((source * k + kk) * h + sy as usize) * w + sx as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
    Ok(ReleasedInit {
        dictionary,
        mixtures,
        size,
        clusters,
    })
}
