//! `diag`: collect a node's data plane, trace a packet through it, explain the verdict.
//! See `docs/diag.md`; `diag --help`.

fn main() {
    std::process::exit(diag::cli::main(std::env::args_os()));
}
