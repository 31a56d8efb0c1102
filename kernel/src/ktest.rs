//! In-kernel tests: `mode=test` on the command line runs them after boot, in
//! the real machine, and exits QEMU with the result.
//!
//! Each test is a function returning `Result`, so that a failed check reports
//! and the run goes on; a panic or a CPU exception ends the run (the panic
//! handler names the test). `cargo xtask qemu` reads the lines printed here
//! and QEMU's exit status (see `qemu::ExitCode`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use x86_64::structures::paging::PhysFrame;

use skiff_net::checksum;

use crate::cmdline::Cmdline;
use crate::nic::Nic;
use crate::qemu::{self, ExitCode};
use crate::{allocator, apic, clock, interrupts, memory, println};
use skiff_net::device::{NetDevice, RxHalf, TxHalf};

type TestResult = Result<(), String>;

/// What tests may use: the devices found at boot and the command line.
pub struct Context {
    /// The network card and how it signals, if there is one.
    pub nic: Option<(Nic, crate::nic::Signal)>,
    /// The kernel command line.
    pub cmdline: &'static Cmdline,
}

/// A named in-kernel test.
#[derive(Clone, Copy)]
pub struct Test {
    pub name: &'static str,
    pub run: fn(&mut Context) -> TestResult,
}

/// Fails the current test with a message unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format_args!($($msg)+), line!()));
        }
    };
}

/// Registers tests under their function names.
macro_rules! tests {
    ($($name:ident),* $(,)?) => { &[$(Test { name: stringify!($name), run: $name }),*] };
}

mod irq;
use irq::{nic_intx_pin_that_fired_while_the_card_was_quiet_is_unmasked, nic_msix_vectors_fire_for_rx_and_tx};

const TESTS: &[Test] = tests![
    heap_box_and_vec_round_trip,
    heap_in_use_returns_to_baseline,
    heap_large_allocation,
    frame_allocator_gives_distinct_usable_frames,
    heap_takes_its_region_but_the_frames_reserve,
    mmio_mapping_reaches_the_io_apic,
    mmio_mapping_refuses_ranges_past_the_address_limit,
    clock_is_monotonic,
    time_before_the_clock_started_is_the_same_whenever_asked,
    clock_agrees_with_pit,
    apic_timer_rate_agrees_with_a_new_measurement,
    apic_timer_interrupt_is_delivered,
    a_timer_that_runs_out_before_the_halt_still_ends_it,
    breakpoint_resumes_with_registers_intact,
    cmdline_parses_words,
    nic_answers_arp_for_the_gateway,
    nic_gets_a_dhcp_offer_with_valid_checksums,
    nic_echoes_udp_with_checksum_offload,
    nic_msix_vectors_fire_for_rx_and_tx,
    nic_intx_pin_that_fired_while_the_card_was_quiet_is_unmasked,
];

/// Index of the test that is running, for the panic handler; `usize::MAX` when none.
static CURRENT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The tests of this run: `TESTS`, plus an injected one when asked for.
static RUN: spin::Once<Vec<Test>> = spin::Once::new();

/// Runs every test, prints a summary and exits QEMU: success only if all passed.
///
/// `inject` adds a misbehaving test (`fail`, `panic`, `fault` or `hang`) so the
/// harness can prove that it notices each kind of failure.
pub fn run(context: &mut Context) -> ! {
    let inject = context.cmdline.get("ktest.inject");
    let mut tests = TESTS.to_vec();
    tests.extend_from_slice(crate::pvh::tests::TESTS);
    match inject {
        Some("fail") => tests.push(Test { name: "injected_failure", run: injected_failure }),
        Some("panic") => tests.push(Test { name: "injected_panic", run: injected_panic }),
        Some("fault") => tests.push(Test { name: "injected_page_fault", run: injected_page_fault }),
        Some("hang") => tests.push(Test { name: "injected_hang", run: injected_hang }),
        Some(other) => log::warn!("unknown ktest.inject \"{other}\" ignored"),
        None => {}
    }
    let tests: &[Test] = RUN.call_once(|| tests);

    println!("ktest: running {} tests", tests.len());
    let mut failed = 0;
    for (i, test) in tests.iter().enumerate() {
        CURRENT.store(i, Ordering::SeqCst);
        let started = clock::now();
        let result = (test.run)(context);
        let ms = (clock::now() - started).as_millis();
        match result {
            Ok(()) => println!("ktest: {} ... ok ({ms} ms)", test.name),
            Err(why) => {
                failed += 1;
                println!("ktest: {} ... FAILED: {why}", test.name);
            }
        }
    }
    CURRENT.store(usize::MAX, Ordering::SeqCst);
    println!("ktest: {} passed, {failed} failed", tests.len() - failed);
    qemu::exit(if failed == 0 { ExitCode::Success } else { ExitCode::TestsFailed })
}

/// Called by the panic handler: names the test that panicked, if any.
pub fn report_panic() {
    let i = CURRENT.load(Ordering::SeqCst);
    if let Some(test) = RUN.get().and_then(|tests| tests.get(i)) {
        crate::serial::write_fmt_emergency(format_args!("ktest: {} ... PANICKED\n", test.name));
    }
}

fn heap_box_and_vec_round_trip(_: &mut Context) -> TestResult {
    let boxed = Box::new(0x5EED_u64);
    check!(*boxed == 0x5EED, "box holds {:#x}", *boxed);
    let v: Vec<u32> = (0..10_000).collect();
    check!(v.iter().enumerate().all(|(i, &x)| x == i as u32), "vector contents changed");
    let sum: u64 = v.iter().map(|&x| u64::from(x)).sum();
    check!(sum == 49_995_000, "sum {sum}");
    Ok(())
}

fn heap_in_use_returns_to_baseline(_: &mut Context) -> TestResult {
    let before = allocator::stats().in_use;
    let blocks: Vec<Box<[u8; 1024]>> = (0..64).map(|_| Box::new([7u8; 1024])).collect();
    let during = allocator::stats().in_use;
    check!(during >= before + 64 * 1024, "in use {during}, expected at least {}", before + 64 * 1024);
    drop(blocks);
    let after = allocator::stats().in_use;
    check!(after == before, "in use {after} after freeing, {before} before");
    check!(allocator::stats().peak >= during, "peak below a value seen");
    Ok(())
}

fn heap_large_allocation(_: &mut Context) -> TestResult {
    const SIZE: usize = 1 << 20;
    let mut big = Vec::<u8>::with_capacity(SIZE);
    big.resize(SIZE, 0xA5);
    big[0] = 1;
    big[SIZE - 1] = 2;
    check!(big[0] == 1 && big[SIZE - 1] == 2 && big[SIZE / 2] == 0xA5, "large block not writable end to end");
    Ok(())
}

fn heap_takes_its_region_but_the_frames_reserve(_: &mut Context) -> TestResult {
    const MIB: u64 = 1 << 20;
    let reserve = memory::FRAME_RESERVE;
    // Other regions hold the reserve: the heap gets its whole region.
    check!(memory::heap_size(100 * MIB, 110 * MIB) == 100 * MIB, "heap not the whole region");
    // -m 8M under PVH: 5184 KiB above the kernel, 1660 KiB below it.
    check!(memory::heap_size(5184 << 10, 6844 << 10) == 5184 << 10, "8 MiB guest");
    // One region only: the reserve stays in it.
    check!(memory::heap_size(64 * MIB, 64 * MIB) == 64 * MIB - reserve, "one region");
    check!(memory::heap_size(64 * MIB, 64 * MIB + 4096) == 64 * MIB - reserve + 4096, "a frame outside");
    check!(memory::heap_size(reserve / 2, reserve / 2) == 0, "a region smaller than the reserve");
    check!(memory::heap_size(64 * MIB + 123, 64 * MIB + 123).is_multiple_of(4096), "not whole frames");
    // This boot: the frame allocator got at least the reserve.
    let (used, free) = memory::frame_stats();
    let frames = used * 4096 + free;
    check!(frames >= reserve, "{frames} bytes for frames, the reserve is {reserve}");
    check!(allocator::stats().size as u64 >= memory::MIN_HEAP_SIZE, "heap below the minimum");
    Ok(())
}

fn frame_allocator_gives_distinct_usable_frames(_: &mut Context) -> TestResult {
    let frames: Vec<PhysFrame> = (0..16).filter_map(|_| memory::allocate_frame()).collect();
    check!(frames.len() == 16, "only {} frames", frames.len());
    for (i, f) in frames.iter().enumerate() {
        check!(f.start_address().is_aligned(4096u64), "frame {f:?} not aligned");
        check!(memory::is_allocatable(*f), "frame {f:?} outside the usable map or inside the heap");
        check!(frames[..i].iter().all(|g| g != f), "frame {f:?} handed out twice");
    }
    // Each frame is real memory: write a pattern through the physical mapping, read it back.
    for (i, f) in frames.iter().enumerate() {
        let ptr = memory::phys_to_virt(f.start_address()).ok_or("no physical mapping")?.as_mut_ptr::<u64>();
        // SAFETY: the frame was just allocated for this test alone and is
        // mapped at `ptr` by the bootloader's physical-memory mapping.
        let read = unsafe {
            ptr.write_volatile(0xF00D_0000 + i as u64);
            ptr.read_volatile()
        };
        check!(read == 0xF00D_0000 + i as u64, "frame {f:?} read back {read:#x}");
    }
    Ok(())
}

fn mmio_mapping_reaches_the_io_apic(_: &mut Context) -> TestResult {
    // Every PC (and QEMU's q35 and pc) has an I/O APIC at this address:
    // select register 1 (version) through IOREGSEL, read it through IOWIN.
    const IOAPIC: u64 = 0xFEC0_0000;
    const IOREGSEL: u64 = 0x00;
    const IOWIN: u64 = 0x10;
    const VERSION_REGISTER: u32 = 1;
    let base = memory::map_mmio(IOAPIC, 0x20).map_err(|e| format!("{e}"))?;
    // SAFETY: `base` maps the I/O APIC's register window uncached; selecting
    // and reading the version register has no side effects, and nothing else
    // in Skiff uses the I/O APIC yet.
    let version = unsafe {
        (base + IOREGSEL).as_mut_ptr::<u32>().write_volatile(VERSION_REGISTER);
        (base + IOWIN).as_ptr::<u32>().read_volatile()
    };
    let (id, max_entry) = (version & 0xFF, (version >> 16) & 0xFF);
    check!((0x11..=0x20).contains(&id), "I/O APIC version {version:#x}: not an I/O APIC");
    check!(max_entry >= 23, "I/O APIC with only {} entries", max_entry + 1);
    Ok(())
}

fn mmio_mapping_refuses_ranges_past_the_address_limit(_: &mut Context) -> TestResult {
    // A BAR's address comes from the device: one at or past 2^52, or a size
    // that runs past it or past the end of the address space, is an error.
    const LIMIT: u64 = 1 << 52;
    for (phys, size) in [(LIMIT, 0x1000), (LIMIT - 0x1000, 0x2000), (u64::MAX - 0xFFF, 0x1000), (0x1000, u64::MAX)] {
        let result = memory::map_mmio(phys, size);
        check!(
            matches!(result, Err(memory::MemoryError::BadAddress { .. })),
            "{size:#x} bytes at {phys:#x}: {result:?}, not BadAddress"
        );
    }
    Ok(())
}

fn clock_is_monotonic(_: &mut Context) -> TestResult {
    let mut last = clock::now();
    for i in 0..100_000 {
        let t = clock::now();
        check!(t >= last, "clock went back at read {i}: {last:?} then {t:?}");
        last = t;
    }
    check!(last > Duration::ZERO, "clock never moved");
    Ok(())
}

fn time_before_the_clock_started_is_the_same_whenever_asked(_: &mut Context) -> TestResult {
    // The boot log's "N ms before the clock started" once read the clock
    // twice and subtracted: a vCPU descheduled between the reads for longer
    // than N made it negative, and a panic (seen once, a BIOS boot under
    // load). An entry one tick before the clock started is the tightest
    // case: with CPUID 0x15 the clock starts microseconds after kernel_main.
    let entry = clock::started_tsc().saturating_sub(1);
    let first = clock::before_start(entry);
    clock::busy_wait(Duration::from_millis(2));
    let second = clock::before_start(entry);
    check!(first == second, "{first:?}, then {second:?} 2 ms later");
    check!(first < Duration::from_micros(1), "one tick read as {first:?}");
    check!(clock::before_start(clock::rdtsc()) == Duration::ZERO, "an entry after the start reads as time before it");
    Ok(())
}

fn clock_agrees_with_pit(_: &mut Context) -> TestResult {
    // Calibration correctness, not speed: a wrong PIT program or a unit error
    // would be off by far more than this, every time. A host that deschedules
    // the vCPU between the PIT running out and the TSC being read only makes
    // one measurement too high, so the closest of a few is compared.
    const TRIES: usize = 5;
    let hz = clock::tsc_hz();
    check!(hz > 0, "TSC frequency unknown");
    let mut runs = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        runs.push(clock::measure_tsc_hz().map_err(|e| format!("{e}"))?);
    }
    let closest = runs.into_iter().min_by_key(|m| m.abs_diff(hz)).unwrap_or(0);
    check!(closest.abs_diff(hz) < hz / 4, "TSC measured at {closest} Hz now (closest of {TRIES}), {hz} Hz at boot");
    Ok(())
}

/// Every sleep's length comes from the rate measured at boot: a rate too
/// high makes every sleep too long (one boot measured 2.2 times the rate).
/// Measured again now, the highest of a few runs must agree within a quarter.
fn apic_timer_rate_agrees_with_a_new_measurement(_: &mut Context) -> TestResult {
    const TRIES: usize = 5;
    let boot = apic::timer_hz().0;
    check!(boot > 0, "APIC timer rate unknown");
    let now = (0..TRIES).map(|_| apic::timer_hz().1).max().unwrap_or(0);
    check!(
        now.abs_diff(boot) < boot / 4,
        "APIC timer measured at {now} Hz now (highest of {TRIES}), {boot} Hz at boot"
    );
    Ok(())
}

fn apic_timer_interrupt_is_delivered(_: &mut Context) -> TestResult {
    const DELAY: Duration = Duration::from_millis(5);
    const GIVE_UP: Duration = Duration::from_secs(2);
    let before = interrupts::count(interrupts::TIMER_VECTOR);
    apic::TIMER_EXPIRED.store(false, Ordering::Release);
    let start = clock::now();
    apic::arm_timer(DELAY);
    x86_64::instructions::interrupts::enable();
    // Spin rather than halt: if the interrupt never comes, the test must end.
    while interrupts::count(interrupts::TIMER_VECTOR) == before && clock::now() - start < GIVE_UP {
        core::hint::spin_loop();
    }
    let elapsed = clock::now() - start;
    check!(interrupts::count(interrupts::TIMER_VECTOR) == before + 1, "no timer interrupt within {GIVE_UP:?}");
    check!(apic::TIMER_EXPIRED.load(Ordering::Acquire), "the registered timer handler did not run");
    // A timer that fires at once would pass the check above; this one would not.
    check!(elapsed >= DELAY / 2, "timer fired after {elapsed:?}, asked for {DELAY:?}");
    Ok(())
}

/// The main loop's sleep (`runloop::arm_and_halt`) must end even when its
/// timer runs out before the halt: here the vCPU is kept busy past the
/// deadline between arming and halting, as a host that deschedules it would.
fn a_timer_that_runs_out_before_the_halt_still_ends_it(_: &mut Context) -> TestResult {
    const SLEEP: Duration = Duration::from_micros(100);
    const LATE: Duration = Duration::from_millis(20);
    let before = interrupts::count(interrupts::TIMER_VECTOR);
    let mut armed_with_interrupts_on = false;
    let halted = crate::runloop::arm_and_halt(SLEEP, || {
        armed_with_interrupts_on = x86_64::instructions::interrupts::are_enabled();
        let start = clock::now();
        while clock::now() - start < LATE {
            core::hint::spin_loop();
        }
        // Had the interrupt been taken already, a halt would never end
        // (nothing else is coming): do not halt, so the checks below report it.
        interrupts::count(interrupts::TIMER_VECTOR) == before
    });
    check!(
        !armed_with_interrupts_on,
        "the timer was armed with interrupts on: one that ran out before the halt was lost"
    );
    check!(halted.is_some(), "the timer interrupt came before the halt");
    check!(
        interrupts::count(interrupts::TIMER_VECTOR) == before + 1,
        "the pending timer interrupt did not end the halt"
    );
    check!(apic::TIMER_EXPIRED.load(Ordering::Acquire), "the timer handler did not run");
    Ok(())
}

fn breakpoint_resumes_with_registers_intact(_: &mut Context) -> TestResult {
    let before = interrupts::count(3);
    // Caller-saved and callee-saved registers alike (rbx and rbp are
    // reserved by the compiler and cannot be named here).
    let mut regs =
        [0x1111_u64, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888, 0x9999, 0xAAAA, 0xBBBB, 0xCCCC, 0xDDDD];
    let want = regs;
    let [a, b, c, d, e, f, g, h, i, j, k, l, m] = &mut regs;
    // SAFETY: int3 traps to the breakpoint handler, which returns; the asm
    // declares every register it names as read and written.
    unsafe {
        core::arch::asm!(
            "int3",
            inout("rax") * a,
            inout("rcx") * b,
            inout("rdx") * c,
            inout("rsi") * d,
            inout("rdi") * e,
            inout("r8") * f,
            inout("r9") * g,
            inout("r10") * h,
            inout("r11") * i,
            inout("r12") * j,
            inout("r13") * k,
            inout("r14") * l,
            inout("r15") * m,
        );
    }
    check!(interrupts::count(3) == before + 1, "breakpoint not counted");
    check!(regs == want, "registers changed across the trap: {regs:x?}");
    Ok(())
}

fn cmdline_parses_words(_: &mut Context) -> TestResult {
    let line = Cmdline::from_bytes(b"  mode=test log=debug verbose k=v=w log=trace ");
    check!(line.get("mode") == Some("test"), "mode: {:?}", line.get("mode"));
    check!(line.get("log") == Some("trace"), "the last value wins: {:?}", line.get("log"));
    check!(line.get("verbose") == Some(""), "bare word: {:?}", line.get("verbose"));
    check!(line.get("k") == Some("v=w"), "value with '=': {:?}", line.get("k"));
    check!(line.get("missing").is_none(), "missing key found");
    let long = [b'x'; 600];
    let cut = Cmdline::from_bytes(&long);
    check!(cut.truncated && cut.as_str().len() == 512, "long line not cut: {}", cut.as_str().len());
    let binary = Cmdline::from_bytes(b"log=debug \xFF\xFE");
    check!(binary.as_str() == "log=debug", "read past a non-UTF-8 byte: {:?}", binary.as_str());
    Ok(())
}

fn injected_failure(_: &mut Context) -> TestResult {
    check!(1 + 1 == 3, "injected failure (ktest.inject=fail)");
    Ok(())
}

fn injected_panic(_: &mut Context) -> TestResult {
    panic!("injected panic (ktest.inject=panic)");
}

fn injected_page_fault(_: &mut Context) -> TestResult {
    /// Canonical, in the lower half, and never mapped by the bootloader or Skiff.
    const UNMAPPED: u64 = 0x0000_7E57_DEAD_0000;
    // SAFETY: not safe, on purpose: this read page-faults, and the fault
    // handler stops the machine, which is what the harness checks.
    let value = unsafe { (UNMAPPED as *const u64).read_volatile() };
    Err(format!("read {value:#x} from an unmapped address"))
}

fn injected_hang(_: &mut Context) -> TestResult {
    qemu::halt_forever()
}

/// Skiff's address and the gateway on QEMU's user network (and on the test
/// TAP network, which `cargo xtask qemu` sets up the same way).
const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
/// How long a NIC test waits for an answer: TCG is slow, but not this slow.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Between retransmissions of a request.
const RESEND_EVERY: Duration = Duration::from_millis(500);

/// Sends `frame` every `RESEND_EVERY` until `answer` accepts a received
/// frame or `ANSWER_WITHIN` passes. Returns the accepted frame.
fn exchange(nic: &mut Nic, frame: &[u8], answer: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
    let start = clock::now();
    let mut last_sent: Option<Duration> = None;
    while clock::now() - start < ANSWER_WITHIN {
        if last_sent.is_none_or(|t| clock::now() - t >= RESEND_EVERY) {
            let (_, tx) = nic.split();
            let mut buffer = tx.reserve(frame.len()).ok_or("no transmit buffer")?;
            tx.bytes_mut(&mut buffer).copy_from_slice(frame);
            tx.send(buffer);
            nic.flush();
            last_sent = Some(clock::now());
        }
        let (rx, _) = nic.split();
        while let Some(frame) = rx.receive() {
            let bytes = rx.bytes(&frame).to_vec();
            rx.recycle(frame);
            if answer(&bytes) {
                nic.flush();
                return Ok(bytes);
            }
        }
        nic.flush();
    }
    Err(format!("no answer within {ANSWER_WITHIN:?}; counters {:?}", nic.stats()))
}

/// "Who has the gateway? Tell us" (RFC 826), from `mac`.
fn arp_request(mac: [u8; 6]) -> Vec<u8> {
    let mut request = ethernet([0xFF; 6], mac, 0x0806);
    request.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    request.extend_from_slice(&mac);
    request.extend_from_slice(&GUEST_IP);
    request.extend_from_slice(&[0; 6]);
    request.extend_from_slice(&GATEWAY_IP);
    request
}

/// Whether `frame` is an ARP reply from the gateway.
fn is_gateway_arp_reply(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [8, 6] && frame[20..22] == [0, 2] && frame[28..32] == GATEWAY_IP
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 + UDP packet after `frame`'s Ethernet header, checksum field zero
/// (the driver or the device fills it in).
fn udp4(mut frame: Vec<u8>, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = !checksum::fold(checksum::sum(&ip, 0));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

fn nic_answers_arp_for_the_gateway(ctx: &mut Context) -> TestResult {
    let (nic, _) = ctx.nic.as_mut().ok_or("no network card")?;
    let mac = nic.info().mac;
    let request = arp_request(mac);
    let reply = exchange(nic, &request, |f| is_gateway_arp_reply(f) && f[32..38] == mac)?;
    check!(reply[0..6] == mac, "ARP reply not addressed to our MAC");
    let s = nic.stats();
    check!(s.tx_frames > 0 && s.rx_frames > 0, "counters did not move: {s:?}");
    Ok(())
}

fn nic_gets_a_dhcp_offer_with_valid_checksums(ctx: &mut Context) -> TestResult {
    // Only QEMU's user network has a DHCP server; it checks UDP checksums,
    // so an offer means the driver's (software or offloaded) checksum was right.
    if ctx.cmdline.get("ktest.net") != Some("user") {
        println!("ktest:   (skipped: no DHCP server on this network)");
        return Ok(());
    }
    let (nic, _) = ctx.nic.as_mut().ok_or("no network card")?;
    let mac = nic.info().mac;
    let xid = [0x5C, 0x1F, 0xF0, 0x0D];
    let mut dhcp = [0u8; 240];
    dhcp[0..4].copy_from_slice(&[1, 1, 6, 0]); // BOOTREQUEST, Ethernet
    dhcp[4..8].copy_from_slice(&xid);
    dhcp[10] = 0x80; // broadcast flag: we have no address yet
    dhcp[28..34].copy_from_slice(&mac);
    dhcp[236..240].copy_from_slice(&[99, 130, 83, 99]); // magic cookie
    let mut payload = dhcp.to_vec();
    payload.extend_from_slice(&[53, 1, 1, 255]); // DHCPDISCOVER, end
    let frame = udp4(ethernet([0xFF; 6], mac, 0x0800), [0; 4], [255; 4], 68, 67, &payload);
    let offer = exchange(nic, &frame, |f| {
        f.len() > 42 + 240 && f[12..14] == [8, 0] && f[23] == 17 && f[34..38] == [0, 67, 0, 68] && f[46..50] == xid
    })?;
    let valid = checksum::verify(&offer);
    check!(valid == Some(true), "DHCP offer with a bad UDP checksum: {valid:?}");
    check!(offer[58..62] == GUEST_IP, "offered {:?}, expected {GUEST_IP:?}", &offer[58..62]);
    Ok(())
}

fn nic_echoes_udp_with_checksum_offload(ctx: &mut Context) -> TestResult {
    // The test TAP network runs a UDP echo server on the gateway's port 7.
    // With CSUM our datagram leaves with a partial checksum for the device to
    // finish; with GUEST_CSUM the host's locally generated echo arrives with
    // a partial checksum (NEEDS_CSUM) that the driver completes.
    if ctx.cmdline.get("ktest.net") != Some("tap") {
        println!("ktest:   (skipped: no echo server on this network)");
        return Ok(());
    }
    let (nic, _) = ctx.nic.as_mut().ok_or("no network card")?;
    let mac = nic.info().mac;
    let request = arp_request(mac);
    let reply = exchange(nic, &request, is_gateway_arp_reply)?;
    let mut gateway_mac = [0; 6];
    gateway_mac.copy_from_slice(&reply[22..28]);

    let before = nic.stats();
    let payload = b"skiff checksum offload, both ways";
    let frame = udp4(ethernet(gateway_mac, mac, 0x0800), GUEST_IP, GATEWAY_IP, 40000, 7, payload);
    let echo = exchange(nic, &frame, |f| {
        f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17 && f[34..38] == [0, 7, 0x9c, 0x40]
    })?;
    let after = nic.stats();
    check!(echo.get(42..42 + payload.len()) == Some(&payload[..]), "the echo changed the payload");
    let valid = checksum::verify(&echo);
    check!(valid == Some(true), "echo checksum after the driver: {valid:?}");
    if nic.info().tx_checksum_offload {
        check!(after.tx_csum_offloaded > before.tx_csum_offloaded, "CSUM negotiated but nothing offloaded");
    }
    if nic.info().rx_checksum_offload {
        let offloaded =
            (after.rx_csum_completed + after.rx_csum_valid) - (before.rx_csum_completed + before.rx_csum_valid);
        check!(offloaded > 0, "GUEST_CSUM negotiated but the echo came without a checksum flag");
    }
    println!(
        "ktest:   echo checksums: tx offloaded {}, rx completed {}, rx valid {}",
        after.tx_csum_offloaded - before.tx_csum_offloaded,
        after.rx_csum_completed - before.rx_csum_completed,
        after.rx_csum_valid - before.rx_csum_valid
    );
    Ok(())
}
