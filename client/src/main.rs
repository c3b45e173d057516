fn main() -> std::process::ExitCode {
    sigil_client::cli::run()
}
