//! `bdp-wrap --dir DIR -- AGENT [ARGS…]`: the wrapper bdp spawns around each agent, as a small program of
//! its own (std and nix only; the code is `src/supervisor/wrapper.rs`, which `bdp __wrap` runs too). bdp
//! uses it when it is installed beside the `bdp` program.

#[allow(dead_code)]
#[path = "../supervisor/wrapper.rs"]
mod wrapper;

fn main() -> std::process::ExitCode {
    match wrapper::parse(std::env::args_os().skip(1)) {
        Ok((dir, argv)) => std::process::ExitCode::from(wrapper::run(&dir, &argv)),
        Err(e) => {
            eprintln!("bdp-wrap: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
