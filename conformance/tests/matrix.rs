//! The conformance matrix: every scenario on every backend compiled for this target, as
//! `<backend>::<scenario>`. `cargo test -p evloop-conformance -- epoll::` runs one column.

mod common;

fn main() {
    evloop_conformance::run_matrix(&common::backends())
}
