//! `genc devices`: lists the graphics adapters genc can run kernels on, then opens the device
//! `--device` picks (the host CPU needs no adapter) and reports its capabilities.

use genc_runtime::device::{self, Device, DeviceChoice};

use super::Status;
use crate::report::Reporter;

pub fn run(choice: DeviceChoice, reporter: &Reporter) -> Status {
    match device::probe() {
        Ok(adapters) if adapters.is_empty() => println!("adapters: none"),
        Ok(adapters) => {
            println!("adapters:");
            for adapter in &adapters {
                let software = if adapter.is_software() { ", software" } else { "" };
                println!(
                    "  {} ({}, {}{software}) driver: {}",
                    adapter.name, adapter.device_type, adapter.backend, adapter.driver
                );
            }
        }
        // Without Vulkan the host device still works: say why there are no adapters.
        Err(error) if choice == DeviceChoice::Cpu || choice == DeviceChoice::Auto => {
            println!("adapters: none ({error})");
        }
        Err(error) => {
            reporter.emit(&error, "devices", None);
            return Status::Diagnostics;
        }
    }
    match Device::open(choice) {
        Ok(device) => {
            println!("--device {choice}: {}", device.info());
            Status::Ok
        }
        Err(error) => {
            reporter.emit(&error, "devices", None);
            Status::Diagnostics
        }
    }
}
