fn main() -> std::process::ExitCode {
    corbel::cli::main()
}
