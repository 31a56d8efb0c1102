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

use crate::cmdline::Cmdline;
use crate::qemu::{self, ExitCode};
use crate::{allocator, apic, clock, interrupts, memory, println};

type TestResult = Result<(), String>;

/// A named in-kernel test.
struct Test {
    name: &'static str,
    run: fn() -> TestResult,
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

const TESTS: &[Test] = tests![
    heap_box_and_vec_round_trip,
    heap_in_use_returns_to_baseline,
    heap_large_allocation,
    frame_allocator_gives_distinct_usable_frames,
    mmio_mapping_aliases_physical_memory,
    clock_is_monotonic,
    clock_agrees_with_pit,
    apic_timer_interrupt_is_delivered,
    breakpoint_resumes_with_registers_intact,
    cmdline_parses_words,
];

/// Index of the test that is running, for the panic handler; `usize::MAX` when none.
static CURRENT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The tests of this run: `TESTS`, plus an injected one when asked for.
static mut RUN: Vec<Test> = Vec::new();

/// Runs every test, prints a summary and exits QEMU: success only if all passed.
///
/// `inject` adds a misbehaving test (`fail`, `panic`, `fault` or `hang`) so the
/// harness can prove that it notices each kind of failure.
pub fn run(inject: Option<&str>) -> ! {
    let mut tests: Vec<Test> = TESTS.iter().map(|t| Test { name: t.name, run: t.run }).collect();
    match inject {
        Some("fail") => tests.push(Test { name: "injected_failure", run: injected_failure }),
        Some("panic") => tests.push(Test { name: "injected_panic", run: injected_panic }),
        Some("fault") => tests.push(Test { name: "injected_page_fault", run: injected_page_fault }),
        Some("hang") => tests.push(Test { name: "injected_hang", run: injected_hang }),
        Some(other) => log::warn!("unknown ktest.inject \"{other}\" ignored"),
        None => {}
    }
    // SAFETY: RUN is written only here, once, before any test runs; the
    // panic handler reads it only after this write.
    let tests: &[Test] = unsafe {
        RUN = tests;
        &*(&raw const RUN)
    };

    println!("ktest: running {} tests", tests.len());
    let mut failed = 0;
    for (i, test) in tests.iter().enumerate() {
        CURRENT.store(i, Ordering::SeqCst);
        let started = clock::now();
        let result = (test.run)();
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
    // SAFETY: CURRENT is set only after RUN was written, and RUN never changes after.
    let tests = unsafe { &*(&raw const RUN) };
    if let Some(test) = tests.get(i) {
        crate::serial::write_fmt_emergency(format_args!("ktest: {} ... PANICKED\n", test.name));
    }
}

fn heap_box_and_vec_round_trip() -> TestResult {
    let boxed = Box::new(0x5EED_u64);
    check!(*boxed == 0x5EED, "box holds {:#x}", *boxed);
    let v: Vec<u32> = (0..10_000).collect();
    check!(v.iter().enumerate().all(|(i, &x)| x == i as u32), "vector contents changed");
    let sum: u64 = v.iter().map(|&x| u64::from(x)).sum();
    check!(sum == 49_995_000, "sum {sum}");
    Ok(())
}

fn heap_in_use_returns_to_baseline() -> TestResult {
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

fn heap_large_allocation() -> TestResult {
    const SIZE: usize = 1 << 20;
    let mut big = Vec::<u8>::with_capacity(SIZE);
    big.resize(SIZE, 0xA5);
    big[0] = 1;
    big[SIZE - 1] = 2;
    check!(big[0] == 1 && big[SIZE - 1] == 2 && big[SIZE / 2] == 0xA5, "large block not writable end to end");
    Ok(())
}

fn frame_allocator_gives_distinct_usable_frames() -> TestResult {
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

fn mmio_mapping_aliases_physical_memory() -> TestResult {
    let frame = memory::allocate_frame().ok_or("no frame")?;
    let offset = 0x10;
    let mmio = memory::map_mmio(frame.start_address() + offset, 8).map_err(|e| format!("{e}"))?;
    let direct = memory::phys_to_virt(frame.start_address() + offset).ok_or("no physical mapping")?;
    check!(mmio != direct, "map_mmio returned the cached mapping");
    // SAFETY: both addresses map the same frame, allocated for this test
    // alone; writes and reads are volatile, so neither is cached by the compiler.
    let read = unsafe {
        direct.as_mut_ptr::<u64>().write_volatile(0x1234_5678_9ABC_DEF0);
        mmio.as_ptr::<u64>().read_volatile()
    };
    check!(read == 0x1234_5678_9ABC_DEF0, "uncached alias read {read:#x}");
    Ok(())
}

fn clock_is_monotonic() -> TestResult {
    let mut last = clock::now();
    for i in 0..100_000 {
        let t = clock::now();
        check!(t >= last, "clock went back at read {i}: {last:?} then {t:?}");
        last = t;
    }
    check!(last > Duration::ZERO, "clock never moved");
    Ok(())
}

fn clock_agrees_with_pit() -> TestResult {
    // Calibration correctness, not speed: a wrong PIT program or a unit error
    // would be off by far more than this.
    let hz = clock::tsc_hz();
    let again = clock::measure_tsc_hz();
    check!(hz > 0, "TSC frequency unknown");
    check!(again.abs_diff(hz) < hz / 4, "TSC measured at {again} Hz now, {hz} Hz at boot");
    Ok(())
}

fn apic_timer_interrupt_is_delivered() -> TestResult {
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

fn breakpoint_resumes_with_registers_intact() -> TestResult {
    let before = interrupts::count(3);
    let (mut a, mut b, mut c, mut d) = (0x1111_u64, 0x2222_u64, 0x3333_u64, 0x4444_u64);
    let (mut e, mut f) = (0x5555_u64, 0x6666_u64);
    // SAFETY: int3 traps to the breakpoint handler, which returns; the asm
    // declares every register it names as read and written.
    unsafe {
        core::arch::asm!("int3", inout("rax") a, inout("rcx") b, inout("rdx") c, inout("rsi") d, inout("r8") e, inout("r11") f);
    }
    check!(interrupts::count(3) == before + 1, "breakpoint not counted");
    check!(
        (a, b, c, d, e, f) == (0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666),
        "registers changed across the trap: {a:#x} {b:#x} {c:#x} {d:#x} {e:#x} {f:#x}"
    );
    Ok(())
}

fn cmdline_parses_words() -> TestResult {
    let line = Cmdline::from_bytes(b"  mode=test log=debug verbose k=v=w log=trace ");
    check!(line.get("mode") == Some("test"), "mode: {:?}", line.get("mode"));
    check!(line.get("log") == Some("trace"), "the last value wins: {:?}", line.get("log"));
    check!(line.get("verbose") == Some(""), "bare word: {:?}", line.get("verbose"));
    check!(line.get("k") == Some("v=w"), "value with '=': {:?}", line.get("k"));
    check!(line.get("missing").is_none(), "missing key found");
    let long = [b'x'; 600];
    let cut = Cmdline::from_bytes(&long);
    check!(cut.truncated && cut.as_str().len() == 512, "long line not cut: {}", cut.as_str().len());
    let binary = Cmdline::from_bytes(&[0xFF, 0xFE]);
    check!(binary.as_str().is_empty(), "non-UTF-8 line not treated as empty");
    Ok(())
}

fn injected_failure() -> TestResult {
    check!(1 + 1 == 3, "injected failure (ktest.inject=fail)");
    Ok(())
}

fn injected_panic() -> TestResult {
    panic!("injected panic (ktest.inject=panic)");
}

fn injected_page_fault() -> TestResult {
    /// Canonical, in the lower half, and never mapped by the bootloader or Skiff.
    const UNMAPPED: u64 = 0x0000_7E57_DEAD_0000;
    // SAFETY: not safe, on purpose: this read page-faults, and the fault
    // handler stops the machine, which is what the harness checks.
    let value = unsafe { (UNMAPPED as *const u64).read_volatile() };
    Err(format!("read {value:#x} from an unmapped address"))
}

fn injected_hang() -> TestResult {
    qemu::halt_forever()
}
