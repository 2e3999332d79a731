//! The `spinlift` command line: a thin layer over the library's [`spinlift::Engine`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
