/// mimalloc instead of the system allocator: every request allocates (sandbox state, strings,
/// JSON), and glibc's malloc/free took a sixth of all cycles under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    corbel::cli::main()
}
