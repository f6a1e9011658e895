//! The device layer: finds the Vulkan (or Metal/DX12) adapters, picks one, and opens a CubeCL
//! client on it.
//!
//! Adapters are listed through wgpu's own instance enumeration *before* CubeCL is asked for a
//! client, on a helper thread with a time limit: CubeCL panics when no adapter exists, and a
//! broken driver could hang. The device is then pinned to the adapter's graphics API, so a
//! machine without Vulkan fails with [`DeviceError::NoAdapter`] instead of silently falling
//! back to wgpu's OpenGL path.
//!
//! Memory: every buffer comes from CubeCL's memory management (`client.empty`,
//! `create_from_slice`), which pools device memory in pages and reuses a freed slice for the
//! next allocation of a fitting size; a [`DeviceTensor`]'s buffer returns to that pool when its
//! last handle is dropped. genc keeps no second pool of its own.

mod error;
mod tensor;

pub use error::DeviceError;
pub use tensor::{Buffer, DeviceTensor, contiguous_strides};

use crate::host::HostDevice;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cubecl::client::Client;
use cubecl::ir::{ElemType, FloatKind, Type};
use cubecl::server::Handle;
use cubecl::wgpu::wgpu;
use cubecl::wgpu::{AutoGraphicsApi, RuntimeOptions, WgpuBackend, WgpuDevice, WgpuDeviceKind};

/// Which device the user asked for (`--device auto|gpu|cpu|vulkan-cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU when there is one (discrete first), else the host device.
    #[default]
    Auto,
    /// A hardware GPU, or an error.
    Gpu,
    /// The host device: genc's own CPU kernels ([`crate::host`]).
    Cpu,
    /// The software Vulkan adapter (Mesa's lavapipe): the GPU kernels run on the CPU.
    VulkanCpu,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            "vulkan-cpu" => Ok(DeviceChoice::VulkanCpu),
            other => Err(format!("unknown device `{other}`; expected auto, gpu, cpu or vulkan-cpu")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::VulkanCpu => "vulkan-cpu",
        })
    }
}

/// One adapter the graphics API reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterReport {
    pub name: String,
    /// `vulkan`, `metal` or `dx12`.
    pub backend: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` or `other`.
    pub device_type: String,
    /// The driver and its version, as the adapter reports them.
    pub driver: String,
    /// `None` for the host device, which is no adapter.
    backend_raw: Option<wgpu::Backend>,
    type_raw: wgpu::DeviceType,
}

impl AdapterReport {
    /// True for a software adapter (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.type_raw == wgpu::DeviceType::Cpu
    }

    fn rank(&self) -> u8 {
        match self.type_raw {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        }
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.device_type, self.backend)
    }
}

/// What an opened device can do.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub adapter: AdapterReport,
    /// CubeCL's name for its runtime and shader compiler, e.g. `wgpu<wgsl>`.
    pub compiler: String,
    /// f16 arithmetic in kernels.
    pub f16: bool,
    /// Atomic add on f32 (genc's kernels never need it: gradients accumulate deterministically).
    pub f32_atomic_add: bool,
    /// Atomic add on i32/u32.
    pub int_atomic_add: bool,
    /// Subgroup (plane) operations; CubeCL turns them off on software adapters.
    pub subgroups: bool,
    /// The largest buffer one allocation may have, in bytes: the smaller of the adapter's
    /// storage-binding and buffer limits.
    pub max_buffer_bytes: u64,
    /// The most buffers one kernel may bind (one below the adapter's per-stage storage-buffer
    /// limit: wgpu keeps one for itself).
    pub max_kernel_buffers: u32,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "{} [{}] f16: {}, f32 atomics: {}, int atomics: {}, subgroups: {}, largest buffer: {} MiB, \
             buffers per kernel: {}",
            self.adapter,
            self.compiler,
            yes(self.f16),
            yes(self.f32_atomic_add),
            yes(self.int_atomic_add),
            yes(self.subgroups),
            self.max_buffer_bytes >> 20,
            self.max_kernel_buffers
        )
    }
}

/// The graphics APIs probed, best first for the platform.
fn backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
}

const PROBE_SECONDS: u64 = 20;

/// Lists the adapters of this machine without touching CubeCL. Never panics; a driver that
/// does not answer within 20 s is an error.
pub fn probe() -> Result<Vec<AdapterReport>, DeviceError> {
    let (send, recv) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("genc-probe".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(probe_now);
            let _ = send.send(result);
        })
        .map_err(|e| DeviceError::Init { name: "adapter probe".into(), reason: e.to_string() })?;
    match recv.recv_timeout(Duration::from_secs(PROBE_SECONDS)) {
        Ok(Ok(adapters)) => Ok(adapters),
        Ok(Err(_)) => Ok(Vec::new()),
        Err(_) => Err(DeviceError::ProbeTimeout { seconds: PROBE_SECONDS }),
    }
}

fn probe_now() -> Vec<AdapterReport> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backends(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = cubecl::future::block_on(instance.enumerate_adapters(backends()));
    adapters
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            AdapterReport {
                name: info.name.clone(),
                backend: info.backend.to_str().to_string(),
                device_type: match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => "discrete",
                    wgpu::DeviceType::IntegratedGpu => "integrated",
                    wgpu::DeviceType::VirtualGpu => "virtual",
                    wgpu::DeviceType::Cpu => "cpu",
                    wgpu::DeviceType::Other => "other",
                }
                .to_string(),
                driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
                backend_raw: Some(info.backend),
                type_raw: info.device_type,
            }
        })
        .collect()
}

/// Picks the Vulkan adapter for `choice` from a probe's list.
pub fn choose(adapters: &[AdapterReport], choice: DeviceChoice) -> Result<&AdapterReport, DeviceError> {
    let fits = |a: &&AdapterReport| match choice {
        DeviceChoice::Auto => true,
        DeviceChoice::Gpu => !a.is_software(),
        DeviceChoice::VulkanCpu => a.is_software(),
        // The host device is no adapter.
        DeviceChoice::Cpu => false,
    };
    adapters.iter().filter(fits).min_by_key(|a| a.rank()).ok_or_else(|| DeviceError::NoAdapter {
        wanted: choice.to_string(),
        found: adapters.iter().map(ToString::to_string).collect(),
    })
}

/// An opened device: where tensors live and primitives run.
// One per process, passed by reference: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Device {
    /// A Vulkan (Metal, DX12) adapter through CubeCL: a GPU, or lavapipe.
    Cube(CubeDevice),
    /// genc's own CPU kernels.
    Host(HostDevice),
}

impl Device {
    /// Opens what `choice` asks for. `auto` takes a hardware GPU when the probe finds one and
    /// the host device otherwise (also when Vulkan itself is missing).
    pub fn open(choice: DeviceChoice) -> Result<Device, DeviceError> {
        match choice {
            DeviceChoice::Cpu => Ok(Device::Host(HostDevice::new(None)?)),
            DeviceChoice::Gpu | DeviceChoice::VulkanCpu => Ok(Device::Cube(CubeDevice::open(choice)?)),
            DeviceChoice::Auto => {
                let has_gpu = probe().is_ok_and(|adapters| adapters.iter().any(|a| !a.is_software()));
                if has_gpu {
                    Ok(Device::Cube(CubeDevice::open(DeviceChoice::Gpu)?))
                } else {
                    Ok(Device::Host(HostDevice::new(None)?))
                }
            }
        }
    }

    /// What the device is and can do.
    pub fn info(&self) -> DeviceInfo {
        match self {
            Device::Cube(d) => d.info().clone(),
            Device::Host(h) => host_info(h),
        }
    }

    /// The most bytes a kernel's scratch buffer may take.
    pub fn scratch_bytes(&self) -> u64 {
        match self {
            Device::Cube(d) => d.scratch_bytes(),
            Device::Host(h) => h.scratch_bytes(),
        }
    }

    /// The same device with another scratch budget: tests use a tiny one to exercise the
    /// sliced paths on small shapes.
    pub fn with_scratch_bytes(&self, bytes: u64) -> Device {
        match self {
            Device::Cube(d) => Device::Cube(d.with_scratch_bytes(bytes)),
            Device::Host(h) => Device::Host(h.with_scratch_bytes(bytes)),
        }
    }

    /// Waits until every launched kernel has finished (the host device is always done).
    pub fn sync(&self) -> Result<(), DeviceError> {
        match self {
            Device::Cube(d) => d.sync(),
            Device::Host(_) => Ok(()),
        }
    }

    /// A short name for reports: `host`, or the adapter's name.
    pub fn name(&self) -> String {
        match self {
            Device::Cube(d) => d.info().adapter.name.clone(),
            Device::Host(h) => format!("host CPU ({} threads)", h.threads()),
        }
    }
}

/// The host device's capabilities in the same form as an adapter's.
fn host_info(h: &HostDevice) -> DeviceInfo {
    DeviceInfo {
        adapter: AdapterReport {
            name: cpu_name(),
            backend: "host".into(),
            device_type: "cpu".into(),
            driver: format!("genc host kernels, {} threads", h.threads()),
            backend_raw: None,
            type_raw: wgpu::DeviceType::Cpu,
        },
        compiler: "host f32 (gemm, rayon)".into(),
        f16: false,
        f32_atomic_add: false,
        int_atomic_add: false,
        subgroups: false,
        max_buffer_bytes: h.limit_bytes(),
        max_kernel_buffers: u32::MAX,
    }
}

/// The CPU's model name, as Linux reports it.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "CPU".into())
}

/// An opened Vulkan (Metal, DX12) device: the CubeCL client every kernel launches on.
#[derive(Clone)]
pub struct CubeDevice {
    client: Client,
    info: DeviceInfo,
    /// Launch metadata already on the device, by content: a training step repeats the same
    /// shapes, so most launches upload nothing. Buffers here are never written after creation.
    metadata: Arc<Mutex<HashMap<Vec<u32>, Handle>>>,
    /// The most bytes one kernel's scratch buffer (im2col columns) may take.
    scratch_bytes: u64,
}

/// The default scratch budget: within one buffer on every device (lavapipe's largest is
/// 128 MiB) and a modest share of memory.
const SCRATCH_BYTES: u64 = 64 << 20;

/// How many distinct metadata buffers [`Device`] keeps before starting over.
const METADATA_CACHE: usize = 4096;

/// Devices already registered with CubeCL in this process (it allows one registration each).
static OPENED: Mutex<Vec<WgpuDevice>> = Mutex::new(Vec::new());

impl CubeDevice {
    /// Probes the adapters and opens the one `choice` asks for.
    pub fn open(choice: DeviceChoice) -> Result<CubeDevice, DeviceError> {
        let adapters = probe()?;
        let adapter = choose(&adapters, choice)?.clone();
        let kind = {
            // CubeCL numbers adapters per type, in the graphics API's enumeration order.
            let index = adapters
                .iter()
                .filter(|a| a.backend_raw == adapter.backend_raw && a.type_raw == adapter.type_raw)
                .position(|a| *a == adapter)
                .unwrap_or(0);
            match adapter.type_raw {
                wgpu::DeviceType::DiscreteGpu => WgpuDeviceKind::DiscreteGpu(index),
                wgpu::DeviceType::IntegratedGpu => WgpuDeviceKind::IntegratedGpu(index),
                wgpu::DeviceType::VirtualGpu => WgpuDeviceKind::VirtualGpu(index),
                wgpu::DeviceType::Cpu => WgpuDeviceKind::Cpu,
                wgpu::DeviceType::Other => WgpuDeviceKind::Other(index),
            }
        };
        let backend = match adapter.backend_raw {
            Some(wgpu::Backend::Metal) => WgpuBackend::Metal,
            Some(wgpu::Backend::Dx12) => WgpuBackend::Dx12,
            _ => WgpuBackend::Vulkan,
        };
        let wgpu_device = WgpuDevice::new(kind).on(backend);
        {
            let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
            if !opened.contains(&wgpu_device) {
                let init_error = |reason: String| DeviceError::Init { name: adapter.to_string(), reason };
                let options = RuntimeOptions::try_default().map_err(|e| init_error(e.to_string()))?;
                cubecl::wgpu::try_init_setup::<AutoGraphicsApi>(&wgpu_device, options)
                    .map_err(|e| init_error(e.to_string()))?;
                opened.push(wgpu_device.clone());
            }
        }
        let client = cubecl::Device::Wgpu(wgpu_device).client();
        let features = client.features();
        let f32_type = Type::atomic(ElemType::Float(FloatKind::F32));
        let int_type = Type::atomic(ElemType::Int(cubecl::ir::IntKind::I32));
        let info = DeviceInfo {
            compiler: client.name().to_string(),
            f16: !features.type_usage(ElemType::Float(FloatKind::F16)).is_empty(),
            f32_atomic_add: features.atomic_type_usage(f32_type).contains(cubecl::features::AtomicUsage::Add),
            int_atomic_add: features.atomic_type_usage(int_type).contains(cubecl::features::AtomicUsage::Add),
            subgroups: !features.plane.is_empty(),
            max_buffer_bytes: client.properties().memory.max_page_size,
            max_kernel_buffers: client.properties().hardware.max_bindings,
            adapter,
        };
        let scratch_bytes = SCRATCH_BYTES.min(info.max_buffer_bytes);
        Ok(CubeDevice { client, info, metadata: Arc::default(), scratch_bytes })
    }

    /// A device buffer holding `words`, shared with every launch that passes the same words.
    pub(crate) fn metadata(&self, words: &[u32]) -> Handle {
        let mut cache = self.metadata.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = cache.get(words) {
            return handle.clone();
        }
        if cache.len() >= METADATA_CACHE {
            cache.clear();
        }
        let bytes: Vec<u8> = words.iter().flat_map(|v| v.to_le_bytes()).collect();
        let handle = self.client.create_from_slice(&bytes);
        cache.insert(words.to_vec(), handle.clone());
        handle
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The most bytes a kernel's scratch buffer may take; kernels that need more work in
    /// slices (a convolution, a few images at a time).
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch_bytes
    }

    /// The same device with another scratch budget (capped at the largest buffer): tests use
    /// a tiny one to exercise the sliced paths on small shapes.
    pub fn with_scratch_bytes(&self, bytes: u64) -> CubeDevice {
        CubeDevice { scratch_bytes: bytes.min(self.info.max_buffer_bytes), ..self.clone() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until every launched kernel has finished.
    pub fn sync(&self) -> Result<(), DeviceError> {
        cubecl::future::block_on(self.client.sync())
            .map_err(|e| DeviceError::Kernel { op: "sync".into(), reason: format!("{e:?}") })
    }
}
