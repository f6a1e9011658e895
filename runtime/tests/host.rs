//! The host device's promise beyond matching the interpreter (which every device test
//! checks): its partitions depend on the shapes alone, so a phase gives the same bits with
//! one thread or several.

mod common;

use common::{checked, leaves};

use genc_compiler::interp::Value;
use genc_compiler::plan;
use genc_runtime::device::{Device, DeviceTensor};
use genc_runtime::executor::LoadedPhase;
use genc_runtime::host::HostDevice;
use genc_runtime::kernels::Leaves;

/// Every output of every training phase of `name` at `batch`, on a host device with `threads`.
fn run_phases(name: &str, batch: u64, threads: usize) -> Vec<Vec<u32>> {
    let device = Device::Host(HostDevice::new(Some(threads)).unwrap_or_else(|e| panic!("{e}")));
    let (program, _) = plan::plan(&checked(name), Some(batch)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let upload = |values: &[Value]| -> Vec<DeviceTensor> {
        values
            .iter()
            .map(|v| DeviceTensor::from_value(&device, v).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    };
    let mut bits = Vec::new();
    for (k, phase) in program.phases.iter().enumerate() {
        let (inputs, params, buffers) = leaves(&program, k);
        let fed =
            Leaves { inputs: upload(&inputs), params: upload(&params), buffers: upload(&buffers), seed: 11 };
        let loaded = LoadedPhase::load(&device, phase).unwrap_or_else(|e| panic!("{e}"));
        for (_, t) in loaded.run(&device, &fed).unwrap_or_else(|e| panic!("{name}: {e}")) {
            let data = t.to_f32(&device).unwrap_or_else(|e| panic!("{e}"));
            bits.push(data.iter().map(|x| x.to_bits()).collect());
        }
    }
    bits
}

#[test]
fn phases_are_bit_identical_whatever_the_thread_count() {
    // Batches large enough that products, convolutions and fused kernels split over threads.
    for (name, batch) in [("dcgan", 32), ("vae", 64), ("wgan_gp", 16)] {
        let one = run_phases(name, batch, 1);
        for threads in [2, 3] {
            assert!(one == run_phases(name, batch, threads), "{name}: {threads} threads differ from one");
        }
    }
}
