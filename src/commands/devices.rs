//! `genc devices`: lists the graphics adapters genc can run kernels on and opens the one
//! `--device` picks, reporting its capabilities.

use genc_runtime::device::{self, Device, DeviceChoice};

use super::Status;
use crate::report::Reporter;

pub fn run(choice: DeviceChoice, reporter: &Reporter) -> Status {
    let adapters = match device::probe() {
        Ok(adapters) => adapters,
        Err(error) => {
            reporter.emit(&error, "devices", None);
            return Status::Diagnostics;
        }
    };
    if adapters.is_empty() {
        println!("adapters: none");
    } else {
        println!("adapters:");
        for adapter in &adapters {
            let software = if adapter.is_software() { ", software" } else { "" };
            println!(
                "  {} ({}, {}{software}) driver: {}",
                adapter.name, adapter.device_type, adapter.backend, adapter.driver
            );
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
