//! Skiff: a unikernel that boots straight into a TCP/IP stack.
//!
//! `kernel_main` brings the machine up in a fixed order, each step logged on
//! the serial port, then either serves (`mode=run`, the default) or runs the
//! in-kernel tests and exits (`mode=test`). The order matters: the console
//! first so that everything after can report, the GDT/IDT so that faults are
//! caught, memory and the heap, then the clock and the APIC that depend on it.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod acpi;
mod allocator;
mod apic;
mod boot;
mod clock;
mod cmdline;
mod dma;
mod entropy;
mod fw_cfg;
mod gdt;
mod interrupts;
mod ioapic;
#[cfg(feature = "ktest")]
mod ktest;
mod logger;
mod memory;
mod nic;
mod nic_mmio;
mod pci;
mod pvh;
mod qemu;
mod rtc;
mod runloop;
mod serial;
mod status;

use core::panic::PanicInfo;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

use crate::boot::BootDescription;

use skiff_net::apps::{echo, http};
use skiff_net::config::NetConfig;
use skiff_net::phy::Adapter;
use skiff_net::seed::SeedSource;
use skiff_net::stack::Stack;

use crate::qemu::ExitCode;

/// Asks the bootloader to map all physical memory (at an address it picks) and
/// for a stack big enough for the network stack's deeper call chains.
const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(bootloader_main, config = &BOOTLOADER_CONFIG);

/// The bootloader's entry (BIOS and UEFI disk images). The other way in is
/// `pvh::pvh_main` (`qemu -kernel`); both end in `kernel_main`.
fn bootloader_main(boot_info: &'static mut BootInfo) -> ! {
    kernel_main(BootDescription::from_bootloader(boot_info))
}

fn kernel_main(boot: BootDescription) -> ! {
    // Bring-up is timed from here: the log's timestamps start only once the
    // clock is calibrated, and the calibration is part of what bring-up costs.
    let entry_tsc = clock::rdtsc();
    serial::init();
    let cmdline = cmdline::init(boot.cmdline);
    logger::init(cmdline.get("log"));
    log::info!(
        "Skiff {} booting ({:?} entry); command line: \"{}\"",
        env!("CARGO_PKG_VERSION"),
        boot.entry,
        cmdline.as_str()
    );
    if cmdline.truncated {
        log::warn!("command line cut to {} bytes", cmdline.as_str().len());
    }

    gdt::init();
    interrupts::init();

    let memory = match memory::init(boot.memory_regions, boot.physical_memory_offset) {
        Ok(memory) => memory,
        Err(e) => panic!("memory set-up failed: {e}"),
    };
    allocator::init(&memory);

    clock::init();
    if let Err(e) = apic::init() {
        panic!("local APIC set-up failed: {e}");
    }
    x86_64::instructions::interrupts::enable();

    let rsdp = boot.rsdp;
    match rsdp {
        Some(addr) => log::info!("ACPI RSDP at {addr:#x}"),
        None => log::warn!("no ACPI RSDP from the firmware"),
    }
    let mut pci = pci::init(rsdp);
    // `net.irq=off` keeps MSI-X off, to run the card without interrupts.
    let use_irq = cmdline.get("net.irq") != Some("off");
    nic::set_queue_size(cmdline.get("net.queue_size"));
    // A card the machine announced on the command line (virtio-mmio, QEMU's
    // microvm), else one on PCI.
    let nic = nic_mmio::init(cmdline.as_str(), use_irq).or_else(|| nic::init(&mut pci, use_irq, rsdp));

    let heap = allocator::stats();
    let (frames, frames_free) = memory::frame_stats();
    log::info!(
        "boot complete, {} ms after kernel_main began ({} ms before the clock started): heap {} KiB of {} MiB in use, \
         {frames} frames used, {} MiB free",
        clock::since(entry_tsc).as_millis(),
        clock::before_start(entry_tsc).as_millis(),
        heap.in_use >> 10,
        heap.size >> 20,
        frames_free >> 20
    );

    match cmdline.get("mode") {
        Some("test") => run_tests(nic, cmdline),
        None | Some("run") => {}
        Some(other) => log::warn!("unknown mode \"{other}\", serving instead"),
    }
    serve(nic, cmdline)
}

/// `mode=test`: runs the in-kernel tests and exits QEMU with the result.
#[cfg(feature = "ktest")]
fn run_tests(nic: Option<(nic::Nic, nic::Signal)>, cmdline: &'static cmdline::Cmdline) -> ! {
    ktest::run(&mut ktest::Context { nic, cmdline })
}

/// `mode=test` on the served kernel, which carries no tests (xtask builds
/// them into `skiff-kernel-ktest` only): says so and exits with a failure,
/// rather than serving as if the tests had passed.
#[cfg(not(feature = "ktest"))]
fn run_tests(_: Option<(nic::Nic, nic::Signal)>, _: &'static cmdline::Cmdline) -> ! {
    println!(
        "this kernel was built without its tests: mode=test needs the test build \
         (cargo build -p skiff-kernel --features ktest; xtask boots target/images/skiff-kernel-ktest for it)"
    );
    qemu::exit(ExitCode::NoTests)
}

/// Sets up the network stack over the card and hands over to the main loop.
fn serve(nic: Option<(nic::Nic, nic::Signal)>, cmdline: &cmdline::Cmdline) -> ! {
    let Some((nic, signal)) = nic else {
        println!("Skiff is up, without a network card. Idling.");
        idle()
    };
    let mut config = NetConfig::from_lookup(|key| cmdline.get(key)).unwrap_or_else(|e| {
        log::warn!("net: bad setting {e}; using the defaults");
        NetConfig::default()
    });
    // The echo sockets' buffers are most of what the stack allocates: fit
    // them to the heap (a guest with little memory gets smaller ones).
    let heap = allocator::stats();
    config.echo_buffer = echo::EchoServer::buffer_for_heap(heap.size.saturating_sub(heap.in_use));
    if config.echo_buffer < echo::MAX_BUFFER {
        log::info!(
            "net: echo buffers {} KiB each way (heap {} KiB free)",
            config.echo_buffer >> 10,
            heap.size.saturating_sub(heap.in_use) >> 10
        );
    }
    // The connection limit and the accept queue (SYNs waiting for a slot)
    // follow the heap, unless the command line set them; the stack logs the
    // limits it starts with.
    let heap_conns = skiff_net::pool::conns_for_heap(heap.size.saturating_sub(heap.in_use));
    config.max_conns = config.max_conns.or(Some(heap_conns));
    config.backlog = config.backlog.or(Some(heap_conns));
    // HTTP's Date header needs the time of day; without it, none is sent.
    config.boot_unix_secs = match rtc::boot_unix_secs(clock::now()) {
        Ok(secs) => {
            log::info!("rtc: booted at {secs} s since the Unix epoch");
            Some(secs)
        }
        Err(e) => {
            log::warn!("rtc: no time of day ({e:?}); HTTP responses will carry no Date");
            None
        }
    };
    let (seed, source) = entropy::seed();
    if source == SeedSource::TimestampOnly {
        log::warn!("net: no RDSEED or RDRAND; TCP sequence numbers are seeded from the TSC only");
    }
    let mut adapter = Adapter::new(nic);
    let stack = Stack::new(&mut adapter, config, seed, clock::now());
    log::info!("net: serving TCP echo on port {} and HTTP on port {}", echo::PORT, http::PORT);
    println!("Skiff is up.");
    let options = runloop::Options {
        busy: cmdline.get("net.poll") == Some("busy"),
        race_check: cmdline.get("net.race_check") != Some("off"),
    };
    runloop::run(adapter, stack, signal, options)
}

/// Sleeps until the next interrupt, forever.
fn idle() -> ! {
    loop {
        // `sti; hlt` as one step: an interrupt cannot slip in between them.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    serial::write_fmt_emergency(format_args!("\nKERNEL PANIC at {} ms: {info}\n", clock::now().as_millis()));
    #[cfg(feature = "ktest")]
    ktest::report_panic();
    qemu::exit(ExitCode::Panic)
}
