//! The assembly entry path shared by all 256 vectors.
//!
//! On an interrupt the CPU pushes `ss, rsp, rflags, cs, rip` (and, for some
//! exceptions, an error code) and jumps to the IDT gate's address. Each gate
//! points at a 16-byte stub here that makes the stack look the same for every
//! vector — it pushes a zero where the CPU pushed no error code, then the
//! vector number — and jumps to `trap_common`, which saves the general-purpose
//! registers, calls Rust's `dispatch` with a pointer to them, restores them
//! and returns with `iretq`. The kernel is built without SSE (the
//! `x86_64-unknown-none` target is soft-float), so there is no vector state to
//! save.

use core::arch::global_asm;

// The entry path saves no SSE state; that is only right while the kernel is
// built without SSE (stray RUSTFLAGS could turn it on).
#[cfg(target_feature = "sse")]
compile_error!("the interrupt entry path does not save SSE registers: build the kernel without SSE");

/// Size of one entry stub; stub `n` is at `trap_stubs + n * STUB_SIZE`.
pub const STUB_SIZE: u64 = 16;

/// The registers as `trap_common` leaves them on the stack, lowest address first.
#[derive(Debug)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the stub.
    pub vector: u64,
    /// Pushed by the CPU for vectors 8, 10–14, 17, 21, 29, 30; zero otherwise.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// Stack alignment: the CPU aligns rsp to 16 bytes before pushing its 5-word
// frame (40 bytes); error code + vector (16) and 15 registers (120) make 176,
// a multiple of 16, so `call` is made with the 16-byte alignment the ABI wants.
global_asm!(
    r#"
    .section .text.trap_stubs, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
1:
    .if !(vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30)
        push 0
    .endif
        push vector
        jmp trap_common
    // Pads the stub to 16 bytes, and fails to assemble if it were longer.
    .org 1b + 16, 0xcc
    .set vector, vector + 1
    .endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
    "#,
    dispatch = sym super::dispatch,
);

unsafe extern "C" {
    /// The first of the 256 entry stubs above.
    static trap_stubs: [u8; 256 * STUB_SIZE as usize];
}

/// The address of the entry stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    let base = (&raw const trap_stubs) as u64;
    base + u64::from(vector) * STUB_SIZE
}
