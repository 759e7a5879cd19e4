//! `--backend cpu|wgpu|cuda`: the one place that names burn's backend types. Library code is generic
//! over `B: AutodiffBackend`; [`on_backend`] instantiates a task once per backend compiled in
//! (`wgpu` and `cuda` are cargo features of this crate, turned on by the `vireo` binary's features).

use anyhow::Result;
use burn::{
    backend::{Autodiff, Flex},
    tensor::backend::AutodiffBackend,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU (always compiled in).
    #[default]
    Cpu,
    /// Vulkan/Metal/DX12 through wgpu (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA CUDA (build with `--features cuda`).
    Cuda,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// A backend and the index of its device (wgpu/cuda).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct BackendChoice {
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Device index for wgpu/cuda.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

/// Work that needs a concrete backend; [`on_backend`] picks it from a [`BackendChoice`].
pub trait OnBackend {
    type Output;
    /// `label` names the backend in logs ("cpu (burn-flex)", "wgpu", "cuda").
    fn run<B: AutodiffBackend>(self, device: B::Device, label: &str) -> Result<Self::Output>;
}

pub fn on_backend<T: OnBackend>(choice: BackendChoice, task: T) -> Result<T::Output> {
    match choice.backend {
        BackendKind::Cpu => task.run::<Autodiff<Flex>>(Default::default(), "cpu (burn-flex)"),
        BackendKind::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::{Wgpu, wgpu::WgpuDevice};
                let device = if choice.device == 0 {
                    WgpuDevice::DefaultDevice
                } else {
                    WgpuDevice::DiscreteGpu(choice.device)
                };
                task.run::<Autodiff<Wgpu>>(device, "wgpu")
            }
            #[cfg(not(feature = "wgpu"))]
            anyhow::bail!(
                "this vireo binary was built without wgpu: build with `--features wgpu` (cargo xtask train <paper> --backend wgpu does)"
            )
        }
        BackendKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                use burn::backend::{Cuda, cuda::CudaDevice};
                task.run::<Autodiff<Cuda>>(CudaDevice::new(choice.device), "cuda")
            }
            #[cfg(not(feature = "cuda"))]
            anyhow::bail!(
                "this vireo binary was built without CUDA: build with `--features cuda` (cargo xtask train <paper> --backend cuda does)"
            )
        }
    }
}
