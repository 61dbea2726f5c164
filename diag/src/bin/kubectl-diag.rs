//! `kubectl-diag`: the same program as `diag`, found by kubectl as a plugin, so
//! `kubectl diag trace ...` works. See `docs/diag.md`.

fn main() {
    std::process::exit(diag::cli::main(std::env::args_os()));
}
