//! `diag`: collect a node's data plane, trace a packet through it, explain the verdict.
//! See `docs/diag.md`; `diag --help`.

/// jemalloc: `check` and `trace` parse a node's whole ruleset (300k rules, tens of MiB of text
/// and JSON) into many small objects and drop them at once; with glibc's malloc a fifth of
/// the CPU time of `diag check` on three such nodes went to malloc and free (perf), jemalloc
/// takes about a fifth less CPU time in all (LD_PRELOAD comparison, `examples/bench_300k`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(diag::cli::main(std::env::args_os()));
}
