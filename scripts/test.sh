#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what is missing, starts the Docker
# engine, checks formatting and lints, builds, and runs every test against a real sshd, git,
# docker, registry and helm. Run as root (the tests run sshd).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/local/bin:/usr/sbin:/sbin"

bash scripts/deps.sh
bash scripts/services.sh
# The container tests build the image FROM a debootstrapped base (no image can be pulled).
bash scripts/base-image.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the built binaries (debug ones; the image takes the release ones):
# build them all first.
cargo build --workspace --bins
cargo build --release --workspace --bins
cargo test --workspace
