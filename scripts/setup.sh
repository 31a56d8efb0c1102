#!/usr/bin/env bash
# Installs what Skiff's build and tests need, and only what is missing:
#   - QEMU, OVMF, g++, tshark, Chromium and netcat from Debian (apt-get update, then apt-get install);
#   - the Rust toolchains, components and targets named by rust-toolchain.toml
#     (kernel, libraries, xtask), boot/rust-toolchain.toml (image builder) and
#     fuzz/rust-toolchain.toml (fuzz targets);
#   - cargo-fuzz, and the C++ compiler its libFuzzer build needs;
#   - REDbot and h11 from PyPI, in a venv at target/judges (the suite's
#     HTTP conformance judges).
# rustup installs nothing by itself on these machines (RUSTUP_AUTO_INSTALL=0),
# so this script does it. Idempotent; quiet and quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '    setup: %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] && [ -e /usr/share/OVMF/OVMF_VARS_4M.fd ] || missing+=(ovmf)
# libfuzzer-sys compiles libFuzzer (C++) for the fuzz targets.
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# The learner's checks (xtask/src/learn): tshark judges captured checksums,
# headless Chromium loads the live page.
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The README's examples talk to the guest's echo with nc (not on a fresh Debian).
command -v nc >/dev/null 2>&1 || missing+=(netcat-openbsd)
# cargo xtask bench: glibc's static library for the Linux guest's /init, and
# xz for kernel modules shipped compressed.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
# The bench's damaged-link rows (issue 14): h2load --h1, keep-alive clients.
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
# The independent HTTP judges (REDbot, h11) live in a venv (see below): Debian
# ships venv's ensurepip only in python3-venv.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
sudo=()
# -n: fail at once rather than wait for a password nobody will type (CI).
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo -n); fi
# The bench downloads Debian's kernel package: apt's lists must know it.
if [ ${#missing[@]} -eq 0 ] && ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
    log "apt-get update (for the bench's Linux kernel package)"
    "${sudo[@]}" apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update -q
    # Without recommends: qemu-system-x86 would pull in a GUI front end.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is needed (https://rustup.rs); it installs the toolchains Skiff names" >&2
    exit 1
fi

# --- Rust toolchains ---------------------------------------------------------
# Prints the TOML array or string value of KEY in the [toolchain] table of FILE,
# one item per line (these files are simple: one key per line).
toml_list() {
    sed -n "s/^$2 *= *//p" "$1" | tr -d '[]",' | tr ' ' '\n' | sed '/^$/d'
}

for file in rust-toolchain.toml boot/rust-toolchain.toml fuzz/rust-toolchain.toml; do
    channel=$(toml_list "$file" channel)
    profile=$(toml_list "$file" profile)
    if ! rustup run "$channel" rustc --version >/dev/null 2>&1; then
        log "installing Rust toolchain $channel (for $file)"
        rustup toolchain install "$channel" --profile "${profile:-minimal}" --no-self-update
    fi
    components=$(toml_list "$file" components)
    if [ -n "$components" ]; then
        installed=$(rustup component list --installed --toolchain "$channel")
        want=()
        for c in $components; do
            # rustup lists "llvm-tools-preview" as "llvm-tools"
            grep -Eq "^${c%-preview}(-|$)" <<<"$installed" || want+=("$c")
        done
        if [ ${#want[@]} -gt 0 ]; then
            log "adding ${want[*]} to $channel"
            rustup component add --toolchain "$channel" "${want[@]}"
        fi
    fi
    targets=$(toml_list "$file" targets)
    if [ -n "$targets" ]; then
        installed=$(rustup target list --installed --toolchain "$channel")
        for t in $targets; do
            if ! grep -qx "$t" <<<"$installed"; then
                log "adding target $t to $channel"
                rustup target add --toolchain "$channel" "$t"
            fi
        done
    fi
done

# --- cargo-fuzz --------------------------------------------------------------
# Runs the fuzz targets in fuzz/ (`cargo xtask fuzz`, and briefly in
# `cargo xtask qemu`). Any installed version will do; a fresh install takes
# about 30 s here. It needs no extra components: no -Zbuild-std by default,
# and llvm-tools only for `cargo fuzz coverage`.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install --locked)"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# --- HTTP judges (REDbot, h11) -------------------------------------------------
# REDbot ("lint for HTTP") judges Skiff's responses in the suite, and h11 (a
# separate HTTP/1.1 parser) its request framing (`cargo xtask judge`). Both
# from PyPI, pinned, into a venv under target/: Debian 12's Python is
# "externally managed" (PEP 668), so `pip install` into it fails unless told
# --break-system-packages, which would mix PyPI packages into the files apt
# owns. A venv needs only python3-venv (above) and touches nothing outside
# the checkout; `cargo clean` removes it. Debian's own python3 is used, not
# whatever `python3` is first on PATH, so every machine gets the same one.
judges=target/judges
if ! "$judges/bin/python" -c 'import h11, redbot' >/dev/null 2>&1; then
    log "installing REDbot and h11 into $judges (python3 -m venv, pip)"
    /usr/bin/python3 -m venv "$judges"
    "$judges/bin/pip" install -q --disable-pip-version-check "redbot==2.7.1" "h11==0.16.0"
fi
